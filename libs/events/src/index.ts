export { EventsModule } from './events.module.js';
export { EventPublisher } from './event-publisher.js';
export { EventReader, compareIds } from './event-reader.js';
export type { EventBatchListener, ResumePoint } from './event-reader.js';
export { EventTickets } from './event-tickets.js';
export type { TicketHolder } from './event-tickets.js';
export { eventStreamKey } from './event-names.js';
