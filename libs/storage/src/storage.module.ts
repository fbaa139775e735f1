import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { OTTER_CONFIG, type OtterConfig } from '#otter/config';
import { BLOB_STORE, type BlobStore } from './blob-store.js';
import { FsBlobStore } from './fs-blob-store.js';
import { S3BlobStore } from './s3-blob-store.js';

/** The configured backend, ready to use: for S3 the bucket exists once this resolves. */
export async function createBlobStore(config: OtterConfig['blobStore']): Promise<BlobStore> {
  if (config.kind === 'fs') return new FsBlobStore(config.dir);
  const store = new S3BlobStore(config.s3);
  try {
    await store.ensureBucket();
  } catch (error) {
    store.close();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(
      `blob store: S3 bucket "${config.s3.bucket}" at ${config.s3.endpoint ?? 'AWS'} is not usable: ${reason}`,
      { cause: error },
    );
  }
  return store;
}

/** Provides BLOB_STORE, chosen by OtterConfig.blobStore, to every module. */
@Global()
@Module({
  providers: [
    {
      provide: BLOB_STORE,
      inject: [OTTER_CONFIG],
      useFactory: (config: OtterConfig): Promise<BlobStore> => createBlobStore(config.blobStore),
    },
  ],
  exports: [BLOB_STORE],
})
export class StorageModule implements OnApplicationShutdown {
  constructor(@Inject(BLOB_STORE) private readonly store: BlobStore) {}

  onApplicationShutdown(): void {
    if (this.store instanceof S3BlobStore) this.store.close();
  }
}
