/** npm run movie -- "p1" "p2" "p3" ... --out movie.mp4 (see --help) */
import { runTransitionCli } from './transition-cli.ts';
import { runCli } from '../cli-kit.ts';

runCli(() => runTransitionCli('movie'));
