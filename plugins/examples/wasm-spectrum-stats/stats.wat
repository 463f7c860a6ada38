;; Example WASM plugin (WebAssembly text; the host compiles it): a tokenizer for spectra
;; (shape [n]) that outputs [sum, mean] of the fluxes. Interface v1 guest ABI: exports
;; memory, alloc, output_len, tokenize; interface version in a custom section.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  ;; Bump allocator; grows memory as needed (the host caps growth).
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then (drop (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16)) (i32.const 1))))))
    (global.set $heap (local.get $end))
    (local.get $p))
  (func (export "output_len") (param $shape i32) (param $ndim i32) (result i32)
    ;; Each call starts a fresh arena: the host allocates per call.
    (if (result i32) (i32.eq (local.get $ndim) (i32.const 1)) (then (i32.const 2)) (else (i32.const 0))))
  (func (export "tokenize") (param $in i32) (param $n i32) (param $shape i32) (param $ndim i32) (param $out i32) (param $outn i32) (result i32)
    (local $i i32) (local $s f32)
    (if (i32.or (i32.ne (local.get $ndim) (i32.const 1)) (i32.ne (local.get $outn) (i32.const 2))) (then (return (i32.const 1))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $s (f32.add (local.get $s) (f32.load (i32.add (local.get $in) (i32.shl (local.get $i) (i32.const 2))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (f32.store (local.get $out) (local.get $s))
    (f32.store (i32.add (local.get $out) (i32.const 4)) (f32.div (local.get $s) (f32.convert_i32_u (local.get $n))))
    (global.set $heap (i32.const 1024))
    (i32.const 0))
  (@custom "astroclip_plugin_interface" "1.0.0")
)
