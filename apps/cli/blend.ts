/** npm run blend -- "prompt A" "prompt B" --out transition.mp4 (see --help) */
import { runTransitionCli } from './transition-cli.ts';
import { runCli } from '../cli-kit.ts';

runCli(() => runTransitionCli('blend'));
