/**
 * ONNX Runtime sessions for the engine: execution-provider choice with errors that say which
 * provider failed and why, and typed access to the input/output metadata that the pipeline reads
 * instead of assuming names and dtypes.
 */
import * as ort from 'onnxruntime-node';
import { accessSync, closeSync, constants, existsSync, openSync, readSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { externalDataLocations } from './external-data.ts';

/**
 * ONNX Runtime's own log lines (coloured, on stderr) repeat errors the engine rethrows with a
 * message that says what to do, and its warnings are for its developers: only fatal ones are
 * printed, unless DEBUG is set (then its default, warnings and up). Set here, before any session
 * exists: the runtime reads it once, when its environment starts.
 */
export const ORT_LOG_SEVERITY: 2 | 4 = process.env.DEBUG ? 2 : 4;
ort.env.logLevel = ORT_LOG_SEVERITY === 2 ? 'warning' : 'fatal';

export type ExecutionProvider = 'cpu' | 'cuda' | 'webgpu';
export const executionProviders: readonly ExecutionProvider[] = ['cpu', 'cuda', 'webgpu'];

/** The GPU a GPU provider uses when none is named. */
export const DEFAULT_DEVICE_ID = 0;

export interface SessionOptions {
  ep?: ExecutionProvider;
  deviceId?: number;
  /** Intra-op threads for the CPU provider; 0/undefined lets ONNX Runtime decide. */
  threads?: number;
}

export interface TensorInfo {
  name: string;
  type: ort.Tensor.Type;
  /** Numbers for fixed dims, strings for symbolic ones, -1 where unknown. */
  shape: Array<number | string>;
}

/**
 * com.microsoft ops that ONNX Runtime's Stable Diffusion optimizer writes and that only the CUDA
 * provider implements (the optimizer's attention, LayerNorm and GELU fusions also run on the CPU).
 */
export const CUDA_ONLY_CONTRIB_OPS = ['GroupNorm', 'SkipGroupNorm', 'NhwcConv', 'BiasSplitGelu', 'BiasAdd'] as const;

export class ExecutionProviderError extends Error {
  constructor(readonly ep: ExecutionProvider, why: string) {
    super(
      `The ${ep} execution provider could not be loaded: ${why}. ` +
        (ep === 'cuda'
          ? 'It needs an NVIDIA GPU with the driver, CUDA 13, cuDNN 9 and the ONNX Runtime CUDA provider library (see the GPU section of README.md); use --ep cpu to render on the CPU.'
          : ep === 'webgpu'
            ? 'It needs a GPU with Vulkan drivers; use --ep cpu to render on the CPU.'
            : 'Check the onnxruntime-node installation.'),
    );
    this.name = 'ExecutionProviderError';
  }
}

export class ModelFileError extends Error {
  constructor(readonly file: string, expected: string) {
    super(`${file}: ${expected}`);
    this.name = 'ModelFileError';
  }
}

/**
 * What to tell the user when a file or folder cannot be opened for a reason other than its
 * absence: EACCES/EPERM ("permission denied: <path> (check its permissions for the user running
 * Blendfarm)") or EISDIR ("<path> is a folder, not a file"). Undefined for other errors (ENOENT:
 * the caller says what it expected there).
 */
export function fileAccessIssue(err: unknown, path: string): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  if (code === 'EACCES' || code === 'EPERM') return `permission denied: ${path} (check its permissions for the user running Blendfarm)`;
  if (code === 'EISDIR') return `${path} is a folder, not a file`;
  return undefined;
}

/** A ModelFileError whose message is fileAccessIssue's text (it names the path itself). */
export class FileAccessError extends ModelFileError {
  constructor(file: string, issue: string) {
    super(file, issue);
    this.message = issue;
    this.name = 'ModelFileError';
  }
}

/**
 * Throws a FileAccessError when `file` cannot be read by this process (no permission on it or a
 * folder above it) or is a folder; returns whether it exists. Root passes every permission check.
 */
export function checkReadableFile(file: string): boolean {
  let isDir: boolean;
  try {
    isDir = statSync(file).isDirectory();
  } catch (err) {
    const issue = fileAccessIssue(err, file);
    if (issue) throw new FileAccessError(file, issue);
    return false;
  }
  if (isDir) throw new FileAccessError(file, `${file} is a folder, not a file`);
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    const issue = fileAccessIssue(err, file) ?? `cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    throw new FileAccessError(file, issue);
  }
  return true;
}

export interface LoadedSession {
  session: ort.InferenceSession;
  inputs: TensorInfo[];
  outputs: TensorInfo[];
  ep: ExecutionProvider;
  path: string;
}

function infos(meta: readonly ort.InferenceSession.ValueMetadata[]): TensorInfo[] {
  return meta.map((m) =>
    m.isTensor
      ? { name: m.name, type: m.type, shape: [...m.shape].map((d) => (typeof d === 'number' || typeof d === 'string' ? d : -1)) }
      : { name: m.name, type: 'float32' as const, shape: [] },
  );
}

/**
 * Opens `path` on the requested provider. CPU is never silently substituted for a GPU provider:
 * a farm worker that advertises CUDA must not quietly render at CPU speed.
 */
export async function openSession(path: string, opts: SessionOptions = {}): Promise<LoadedSession> {
  if (!checkReadableFile(path)) throw new ModelFileError(path, 'file not found (expected an ONNX model, model.onnx)');
  return create(path, path, opts);
}

/** Opens a model held in memory (e.g. one converted at load time); `label` names it in errors. */
export async function openSessionFromBytes(bytes: Uint8Array, label: string, opts: SessionOptions = {}): Promise<LoadedSession> {
  return create(bytes, label, opts);
}

async function create(source: string | Uint8Array, path: string, opts: SessionOptions): Promise<LoadedSession> {
  const ep = opts.ep ?? 'cpu';
  const providers: ort.InferenceSession.ExecutionProviderConfig[] =
    ep === 'cuda'
      ? [{ name: 'cuda', deviceId: opts.deviceId ?? DEFAULT_DEVICE_ID }]
      : ep === 'webgpu'
        ? [{ name: 'webgpu' }]
        : [{ name: 'cpu' }];
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: providers,
    graphOptimizationLevel: 'all',
    // Large arena growth on CPU wastes memory on a shared farm box for little speed.
    enableCpuMemArena: true,
    // The session's own log (load and run errors, e.g. a Concat that does not fit): see ORT_LOG_SEVERITY.
    logSeverityLevel: ORT_LOG_SEVERITY,
  };
  if (opts.threads && opts.threads > 0) options.intraOpNumThreads = opts.threads;
  let session: ort.InferenceSession;
  try {
    session = typeof source === 'string' ? await ort.InferenceSession.create(source, options) : await ort.InferenceSession.create(source, options);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    // Only the files this load reads: the model file, or (when it parses) the weight files it names.
    const needed = typeof source === 'string' ? filesOfModel(source) : undefined;
    const pointers = needed?.filter(isLfsPointer) ?? [];
    if (pointers.length > 0) {
      const names = pointers.map((file) => basename(file)).join(', ');
      throw new ModelFileError(
        path,
        `${pointers[0] === source ? 'this file is a Git LFS pointer' : pointers.length === 1 ? `its weights file ${names} is a Git LFS pointer` : `its weights files ${names} are Git LFS pointers`} (a few lines of text), not the model's data: the download skipped the large files; fetch them (git lfs pull in the clone, or huggingface-cli download) and try again`,
      );
    }
    // A file this load reads that this user may not read, or a folder in its place: say that, not ONNX Runtime's "system error number 13".
    for (const file of needed ?? []) checkReadableFile(file);
    const missingKernel = /Failed to find kernel for (?:[\w.]+\.)?(\w+)\((\d+)\)|Could not find an implementation for (\w+)\((\d+)\)/.exec(msg);
    if (missingKernel) {
      const op = missingKernel[1] ?? missingKernel[3];
      const version = missingKernel[2] ?? missingKernel[4];
      if (ep !== 'cuda' && (CUDA_ONLY_CONTRIB_OPS as readonly string[]).includes(op)) {
        throw new ModelFileError(
          path,
          `uses ${op}, an operator the ${ep} provider has no kernel for. Graphs from ONNX Runtime's Stable Diffusion optimizer with --float16 ` +
            `(${CUDA_ONLY_CONTRIB_OPS.join(', ')}) run on CUDA only: render this folder with --ep cuda (BLENDFARM_EP=cuda), ` +
            `and point CPU workers at the plain export or a CPU-target optimizer run (models/README.md, "Fast GPU graphs")`,
        );
      }
      throw new ModelFileError(
        path,
        `uses ${op} (version ${version}), which ONNX Runtime ${ort.env.versions.common} has no kernel for on the ${ep} provider at this graph's types; ` +
          'export the model again with standard ONNX ops (opset 17 works) or for another provider',
      );
    }
    if (ep !== 'cpu' && /provider|backend|cuda|webgpu|dawn|libcu|\.so/i.test(msg)) {
      throw new ExecutionProviderError(ep, firstLine(msg));
    }
    const ir = /Unsupported model IR version: (\d+), max supported IR version: (\d+)/.exec(msg);
    if (ir) {
      throw new ModelFileError(
        path,
        `is stored in ONNX IR version ${ir[1]}, and ONNX Runtime ${ort.env.versions.common} reads up to IR version ${ir[2]}. The graph itself is usually fine: ` +
          `set its IR version to ${ir[2]} (models/README.md, "Fast GPU graphs"): python -c "import onnx,sys; m=onnx.load(sys.argv[1],load_external_data=False); m.ir_version=${ir[2]}; onnx.save(m,sys.argv[1])" ${typeof source === 'string' ? source : 'model.onnx'}`,
      );
    }
    const opset = /Opset (\d+) is under development[\s\S]*?official support for domain (\S+) is till opset (\d+)/.exec(msg);
    if (opset) {
      throw new ModelFileError(
        path,
        `uses opset ${opset[1]} of ${opset[2]}, which ONNX Runtime ${ort.env.versions.common} does not support: it supports ${opset[2]} up to opset ${opset[3]}. ` +
          'Export the model again with a released opset (opset 17 works, e.g. torch.onnx.export(..., opset_version=17))',
      );
    }
    if (/external|data file|\.onnx_data|\.pb|No such file/i.test(msg)) {
      const weightFiles = needed?.filter((file) => file !== source) ?? [];
      const missing = weightFiles.filter((file) => !existsSync(file));
      const names = (files: string[]) => (files.length === 1 ? ` ${basename(files[0])}` : files.length > 1 ? `s ${files.map((file) => basename(file)).join(', ')}` : '');
      if (missing.length > 0) {
        throw new ModelFileError(path, `its external weight file${names(missing)} ${missing.length === 1 ? 'is' : 'are'} missing; keep model.onnx and its weights file side by side`);
      }
      if (/out of bounds|can not be read in full/i.test(msg)) {
        throw new ModelFileError(
          path,
          `its external weight file${names(weightFiles)} ${weightFiles.length > 1 ? 'are' : 'is'} truncated or unreadable: the model reads past its end (${ortMessage(msg)}); copy the weights again whole (a download or copy stopped early)`,
        );
      }
      throw new ModelFileError(path, `its external weight file${names(weightFiles)} is unreadable (${ortMessage(msg)}); keep model.onnx and its weights file side by side`);
    }
    throw new ModelFileError(path, `not a loadable ONNX model (${ortMessage(msg)})`);
  }
  return { session, inputs: infos(session.inputMetadata), outputs: infos(session.outputMetadata), ep, path };
}

const LFS_POINTER = 'version https://git-lfs.github.com/spec/';

/**
 * The files loading `modelPath` reads: the model file and the external weight files it names
 * (nothing else in its folder, so an unrelated file there is never blamed). Just the model file
 * when it cannot be parsed.
 */
function filesOfModel(modelPath: string): string[] {
  try {
    return [modelPath, ...externalDataLocations(modelPath).map((location) => join(dirname(modelPath), location))];
  } catch {
    return [modelPath];
  }
}

/** A Git LFS pointer file (a few lines of text starting with the LFS spec line) left where model data should be. */
function isLfsPointer(file: string): boolean {
  try {
    if (statSync(file).size > 1024) return false;
    const fd = openSync(file, 'r');
    try {
      const head = Buffer.alloc(LFS_POINTER.length);
      readSync(fd, head, 0, head.length, 0);
      return head.toString('latin1') === LFS_POINTER;
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function firstLine(s: string): string {
  return cutAtWord(s.split('\n')[0], 400);
}

/**
 * ONNX Runtime's error without what only its developers read: "Load model from X failed:", the
 * source file and C++ signature (/onnxruntime_src/...cc:192 onnxruntime::Model::Model(...)),
 * "[ONNXRuntimeError] : 1 : FAIL :"; the first line, cut at a word boundary past 400 characters.
 */
export function ortMessage(msg: string): string {
  let s = msg.split('\n')[0].replace(/^Load model from .*? failed:/, '');
  for (;;) {
    const at = /\/onnxruntime_src\/\S+:\d+ /.exec(s);
    if (!at) break;
    let end = at.index + at[0].length;
    // A C++ signature follows: skip to its closing parenthesis (and a trailing "const").
    const open = s.indexOf('(', end);
    if (open >= 0 && !/[.!?] /.test(s.slice(end, open))) {
      let depth = 0;
      for (let i = open; i < s.length; i++) {
        if (s[i] === '(') depth++;
        else if (s[i] === ')' && --depth === 0) {
          end = i + 1;
          break;
        }
      }
      end = end + (/^ const\b/.exec(s.slice(end))?.[0].length ?? 0);
    }
    s = s.slice(0, at.index) + s.slice(end).replace(/^\s+/, '');
  }
  s = s.replace(/\[ONNXRuntimeError\] : \d+ : \w+ : /g, '').replace(/\b\w+\.(?:cc|h):\d+ (?:\w+ )?(?=[A-Z])/g, '').trim();
  return cutAtWord(s, 400);
}

/** `s` up to `max` characters, cut at the last space before it with "…" when longer. */
function cutAtWord(s: string, max: number): string {
  if (s.length <= max) return s;
  const space = s.lastIndexOf(' ', max);
  return `${s.slice(0, space > max / 2 ? space : max).replace(/[\s,;:]+$/, '')}…`;
}

export { ort };
