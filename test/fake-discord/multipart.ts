/** A small multipart/form-data reader, strict enough that a malformed upload is a 400, not a shrug. */
import { Errors } from './errors.ts';

export interface FormPart {
  name: string;
  filename: string | null;
  contentType: string | null;
  data: Buffer;
}

const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

export function boundaryOf(contentType: string): string {
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) throw Errors.badRequest('multipart/form-data body without a boundary in its Content-Type');
  return boundary;
}

export function parseMultipart(body: Buffer, contentType: string): FormPart[] {
  const delimiter = Buffer.from(`--${boundaryOf(contentType)}`);
  const nextDelimiter = Buffer.concat([CRLF, delimiter]);
  let pos = body.indexOf(delimiter);
  if (pos < 0) throw Errors.badRequest('multipart body does not contain its boundary');
  const parts: FormPart[] = [];
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts; // closing "--boundary--"
    if (!body.subarray(pos, pos + 2).equals(CRLF)) throw Errors.badRequest('multipart boundary not followed by CRLF');
    pos += 2;
    const headerEnd = body.indexOf(HEADER_END, pos);
    if (headerEnd < 0) throw Errors.badRequest('multipart part without a blank line after its headers');
    const headers = parseHeaders(body.subarray(pos, headerEnd).toString('utf8'));
    const dataStart = headerEnd + HEADER_END.length;
    const dataEnd = body.indexOf(nextDelimiter, dataStart);
    if (dataEnd < 0) throw Errors.badRequest('multipart body is truncated (no closing boundary)');
    parts.push({ ...headers, data: body.subarray(dataStart, dataEnd) });
    pos = dataEnd + CRLF.length;
  }
}

function parseHeaders(text: string): Omit<FormPart, 'data'> {
  let disposition: string | null = null;
  let contentType: string | null = null;
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) throw Errors.badRequest(`malformed multipart header line "${line}"`);
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'content-disposition') disposition = value;
    else if (key === 'content-type') contentType = value;
  }
  if (!disposition || !/^form-data\b/i.test(disposition)) throw Errors.badRequest('multipart part without "Content-Disposition: form-data"');
  const name = param(disposition, 'name');
  if (name === null) throw Errors.badRequest('multipart part without a name');
  return { name, filename: param(disposition, 'filename'), contentType };
}

/** Reads name="..." from a Content-Disposition value; undici escapes '"', CR and LF as %22, %0D, %0A. */
function param(disposition: string, key: string): string | null {
  const match = new RegExp(`;\\s*${key}="((?:[^"\\\\]|\\\\.)*)"`, 'i').exec(disposition);
  if (!match) return null;
  return match[1].replace(/%22/g, '"').replace(/%0D/gi, '\r').replace(/%0A/gi, '\n').replace(/\\(.)/g, '$1');
}
