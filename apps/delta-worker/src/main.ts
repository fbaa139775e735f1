import 'reflect-metadata';
import { Logger } from 'nestjs-pino';
import { loadConfig } from '#otter/config';
import { createDeltaWorker } from './create-delta-worker.js';

const app = await createDeltaWorker(loadConfig());
app.get(Logger).log('delta-worker started');
