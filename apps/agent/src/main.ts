import { Command } from 'commander';
import { describeAgentError } from './commands/describe-error.js';
import { EXIT_VERDICT_FAILED, registerDeviceCommands } from './commands/device.commands.js';
import { registerFetchCommand } from './commands/fetch.command.js';
import { registerInstallCommand } from './commands/install.command.js';
import { registerRunCommand } from './commands/run.command.js';
import { addTransportOptions } from './commands/transport.js';

const program = new Command('otter-agent')
  .description('Otter update agent')
  .addHelpText(
    'after',
    `\nExit status: 0 success, 1 error (\`otter-agent: CODE: message\` on stderr), ${EXIT_VERDICT_FAILED} attestation ` +
      'verdict failed.',
  );

addTransportOptions(program);
registerFetchCommand(program);
registerInstallCommand(program);
registerDeviceCommands(program);
registerRunCommand(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.stderr.write(`otter-agent: ${describeAgentError(error)}\n`);
  process.exitCode = 1;
}
