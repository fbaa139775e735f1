import 'reflect-metadata';
import { loadConfig } from '#otter/config';
import { createScheduler } from './create-scheduler.js';

await createScheduler(loadConfig());
