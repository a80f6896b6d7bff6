/**
 * The ret-site finder against the machine's own libssl (Debian's OpenSSL 3) and hand-assembled
 * snippets of what makes a linear sweep go wrong or leave early.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { decodeInstruction, functionSites, readElf, retSites } from './elf.js';
const TLS_FUNCTIONS = ['SSL_read', 'SSL_read_ex', 'SSL_write', 'SSL_write_ex'];

const LIBSSL3 = '/usr/lib/x86_64-linux-gnu/libssl.so.3';
const hex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s.replace(/\s+/g, ''), 'hex'));

test('Debian\'s libssl.so.3: SSL_read, SSL_read_ex, SSL_write, SSL_write_ex each walked to their end, every ret found, at a ret opcode', (t) => {
  if (!existsSync(LIBSSL3)) {
    if (process.env.CI === 'true') assert.fail(`${LIBSSL3} is missing (libssl3)`);
    t.skip(`${LIBSSL3} is missing`);
    return;
  }
  const image = readElf(readFileSync(LIBSSL3));
  for (const name of TLS_FUNCTIONS) {
    const f = image.functions.get(name);
    assert.ok(f, `${name} is in .dynsym`);
    const sites = functionSites(image, name);
    assert.ok('entry' in sites, `${name}: ${'missing' in sites ? sites.missing : ''}`);
    assert.equal(sites.entry, f.fileOffset);
    assert.ok(sites.rets.length >= 1, `${name} returns somewhere`);
    for (const at of sites.rets) {
      assert.ok(at > sites.entry && at < sites.entry + f.size, `${name}: its ret at 0x${at.toString(16)} is inside it`);
      assert.equal(image.data[at], 0xc3, `${name}: 0x${at.toString(16)} holds a ret`);
    }
    t.diagnostic(`${name}: ${f.size} bytes at 0x${f.fileOffset.toString(16)}, rets at ${sites.rets.map((r) => `+0x${(r - f.fileOffset).toString(16)}`).join(' ')}`);
  }
  // SSL_set_fd only gets an entry probe, but it is there too
  assert.ok(image.functions.has('SSL_set_fd'));
});

test('instruction lengths of the awkward encodings: prefixes, REX.W immediates, SIB and rip-relative operands, VEX, EVEX, three-byte maps', () => {
  const cases: [string, number][] = [
    ['c3', 1],
    ['f3 c3', 2], // rep ret
    ['c2 08 00', 3], // ret imm16
    ['f3 0f 1e fa', 4], // endbr64
    ['48 b8 01 02 03 04 05 06 07 08', 10], // movabs rax, imm64
    ['66 b8 34 12', 4], // mov ax, imm16
    ['66 2e 0f 1f 84 00 00 00 00 00', 10], // nopw cs:0(rax,rax,1)
    ['64 48 8b 04 25 28 00 00 00', 9], // mov rax, fs:0x28 (SIB, no base: disp32)
    ['48 8d 05 10 20 30 40', 7], // lea rax, [rip+disp32]
    ['48 8b 44 24 08', 5], // mov rax, [rsp+8]
    ['f6 44 24 08 01', 5], // test byte [rsp+8], 1
    ['f7 c2 ff 00 00 00', 6], // test edx, imm32
    ['f7 d8', 2], // neg eax: same group, no immediate
    ['c5 f9 6f 05 00 00 00 00', 8], // vmovdqa xmm0, [rip]
    ['c4 e3 79 16 c0 01', 6], // vpextrd eax, xmm0, 1 (map 0F3A: imm8)
    ['62 f1 fd 48 6f 44 24 01', 8], // vmovdqa64 zmm0, [rsp+0x40] (EVEX, disp8*N)
    ['66 0f 3a 0f c1 08', 6], // palignr xmm0, xmm1, 8
    ['66 0f 38 00 c1', 5], // pshufb xmm0, xmm1
    ['0f 0b', 2], // ud2
    ['c8 10 00 00', 4], // enter 16, 0
  ];
  for (const [bytes, length] of cases) assert.equal(decodeInstruction(hex(bytes), 0)?.length, length, bytes);
});

test('ret sites of snippets: every ret, including after branches around them; a sweep that would go wrong is refused', () => {
  // test edi, edi; je +3; mov eax, 1; ret; xor eax, eax; rep ret   (the je lands on the xor)
  const two = retSites(hex('85 ff 74 06 b8 01 00 00 00 c3 31 c0 f3 c3'));
  assert.deepEqual(two, { ok: true, offsets: [9, 12] });
  // a tail call: jmp rel32 out of the function leaves without a ret
  assert.match(reason(retSites(hex('48 85 ff 74 01 c3 e9 00 10 00 00'))), /jump out of the function/);
  // a jump table: jmp [rax*8+table]
  assert.match(reason(retSites(hex('ff 24 c5 00 00 00 00 c3'))), /indirect jump/);
  // a branch into the middle of an instruction: the bytes are not what the sweep took them for
  assert.match(reason(retSites(hex('eb 01 b8 c3 00 00 00 c3'))), /middle of an instruction/);
  // data in the code (a string), decoded as far as it goes
  assert.match(reason(retSites(hex('c3 06 07'))), /unknown instruction/);
  // an instruction cut by the function's end
  assert.match(reason(retSites(hex('c3 48 b8 01 02'))), /unknown instruction/);
  assert.match(reason(retSites(hex('31 c0 90'))), /no ret/);
});

function reason(r: ReturnType<typeof retSites>): string {
  return r.ok ? `ok ${r.offsets.join(',')}` : r.reason;
}
