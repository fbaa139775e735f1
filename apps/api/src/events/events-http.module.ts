import { Module } from '@nestjs/common';
import { AuthModule } from '#otter/auth';
import { EventStreamGuard } from './event-stream.guard.js';
import { EventStreamService } from './event-stream.service.js';
import { EventsController } from './events.controller.js';

/** GET /api/v1/events and its tickets; the EventsModule (reader, tickets) is global in the api. */
@Module({
  imports: [AuthModule],
  controllers: [EventsController],
  providers: [EventStreamService, EventStreamGuard],
})
export class EventsHttpModule {}
