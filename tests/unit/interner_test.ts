import assert from "node:assert/strict";
import { Interner } from "../../src/_interner.ts";

Deno.test("The interner returns the live object of a key and stores the first one given", () => {
  const interner = new Interner<{ n: number }>();
  const first = { n: 1 };
  assert.equal(interner.intern("a", first), first);
  assert.equal(interner.intern("a", { n: 1 }), first);
  const other = { n: 2 };
  assert.equal(interner.intern("b", other), other);
  assert.equal(interner.size, 2);
});
