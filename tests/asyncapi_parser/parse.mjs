// Parses the AsyncAPI document (JSON or YAML text) on stdin with the official parser and prints
// {"errors": [...], "warnings": [...]}, each item {code, message, path}: severity 0 is an error,
// any other severity a warning. Exits 0 when there is no error and a document was produced, else 1.
import { Parser } from '@asyncapi/parser';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const text = Buffer.concat(chunks).toString('utf8');

const { document, diagnostics } = await new Parser().parse(text);

const item = (d) => ({
  code: String(d.code),
  message: d.message,
  path: (d.path ?? []).join('.'),
});
const errors = diagnostics.filter((d) => d.severity === 0).map(item);
const warnings = diagnostics.filter((d) => d.severity !== 0).map(item);
if (document === undefined && errors.length === 0) {
  errors.push({ code: 'no-document', message: 'the parser produced no document', path: '' });
}

process.stdout.write(`${JSON.stringify({ errors, warnings })}\n`);
process.exitCode = errors.length === 0 ? 0 : 1;
