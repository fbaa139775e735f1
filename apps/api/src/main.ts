import 'reflect-metadata';
import { loadConfig } from '#otter/config';
import { createApi } from './create-api.js';

const config = loadConfig();
const app = await createApi(config);
await app.listen({ port: config.port, host: config.host });
