// Tests reach Redis and PostgreSQL through these variables; `make test` sets them (scripts/test-services.sh).
export default function setup(): void {
  for (const name of ['OTTER_TEST_REDIS_URL', 'OTTER_TEST_DATABASE_URL']) {
    if (!process.env[name]) {
      throw new Error(`${name} is not set: run the tests through \`make test\` or \`make unit\``);
    }
  }
}
