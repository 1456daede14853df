package query

import (
	"encoding/binary"
	"math"

	"github.com/prometheus/prometheus/model/value"
)

// The fast path's XOR chunk decoder. Prometheus' iterator
// (tsdb/chunkenc/xor.go) takes a method call, an interface call and an
// At per sample and keeps its state in the iterator; on the fast path's
// long ranges that was 37 ns of a sample's ~70. decodeXOR reads a whole
// chunk in one loop with its state in registers and appends straight
// into the series being loaded. The format is Prometheus' (Gorilla's
// with millisecond timestamps):
//
//	2 bytes  number of samples, big endian
//	varint   first timestamp; 64 bits: first value
//	uvarint  second timestamp's delta; the second value as below
//	then per sample: the delta of delta of its timestamp
//	  0 (zero) | 10 +14 bits | 110 +17 bits | 1110 +20 bits | 1111 +64 bits
//	and its value XORed with the previous one
//	  0 (same) | 10 + the bits inside the previous leading/trailing zeros
//	  | 11 + 5 bits leading zeros + 6 bits significant bits (0 means 64) + the bits
//
// Whatever it cannot read exactly as Prometheus' iterator would (a
// truncated or malformed chunk) makes it return false: the engine then
// evaluates the part with Prometheus' own code.

// bitReader reads bits MSB first: the next n bits are at the top of
// buf; the bits below them may hold a copy of bits not yet counted
// (refill ORs whole words in), which are the same bits at the same place.
// decodeXOR keeps one in locals (registers) and calls the methods on a
// copy for what is rare.
type bitReader struct {
	data []byte
	i    int // next byte not yet counted in n
	buf  uint64
	n    uint
}

// refill tops n up to at least 57 bits where the data has them.
func (r *bitReader) refill() {
	if r.i+8 <= len(r.data) {
		r.buf |= binary.BigEndian.Uint64(r.data[r.i:]) >> r.n
		k := (64 - r.n) >> 3
		r.i += int(k)
		r.n += k * 8
		return
	}
	for r.n <= 56 && r.i < len(r.data) {
		r.buf |= uint64(r.data[r.i]) << (56 - r.n)
		r.n += 8
		r.i++
	}
}

// bits reads k bits, 1 <= k <= 64; false past the end of the data.
func (r *bitReader) bits(k uint) (uint64, bool) {
	if r.n < k {
		r.refill()
		if r.n < k {
			// Past the end, or k > 57 and the word came short: two reads.
			if k <= 32 {
				return 0, false
			}
			hi, ok := r.bits(32)
			if !ok {
				return 0, false
			}
			lo, ok := r.bits(k - 32)
			return hi<<(k-32) | lo, ok
		}
	}
	v := r.buf >> (64 - k)
	r.buf <<= k
	r.n -= k
	return v, true
}

// decodeXOR appends the samples of the XOR chunk chk (its bytes, header
// included) with from <= t <= to to b, as loadChunks does with the
// iterator: when skipBefore, samples before from are passed over; a
// sample at or before last (the last one appended, from an earlier
// chunk) means overlapping chunks. It returns the new last, and false
// where the engine must decide.
func decodeXOR(chk []byte, b *fastSeries, from, to, last int64, skipBefore bool) (int64, bool) {
	if len(chk) < 2 {
		return last, false
	}
	total := int(binary.BigEndian.Uint16(chk))
	if total == 0 {
		return last, true
	}
	data := chk[2:]
	t, n := binary.Varint(data)
	if n <= 0 || len(data) < n+8 {
		return last, false
	}
	vbits := binary.BigEndian.Uint64(data[n:])
	data = data[n+8:]

	// The series being loaded, in locals; written back at the end.
	k := len(b.ts)
	b.grow(total)
	ts, fs := b.ts[:k+total], b.fs[:k+total]
	var (
		r        bitReader // the rare paths' reader
		buf      uint64    // the reader in registers: see bitReader
		nb       uint
		i        int
		tDelta   uint64
		leading  uint
		trailing uint
		haveLT   bool
		ok       = true
	)
	for read := 0; ; {
		if read > 0 {
			// The value. Every path below needs at most 57 bits but
			// the 11 with many significant bits. (The refill is written
			// out here and below: as a function it is over the
			// compiler's inlining budget, 113 of 80, and it runs for
			// nearly every sample.)
			if nb < 57 {
				if i+8 <= len(data) {
					buf |= binary.BigEndian.Uint64(data[i:]) >> nb
					w := (64 - nb) >> 3
					i += int(w)
					nb += w * 8
				} else {
					r = bitReader{data, i, buf, nb}
					r.refill()
					i, buf, nb = r.i, r.buf, r.n
				}
			}
			if mbits := 64 - leading - trailing; nb >= 1 && buf>>63 == 0 {
				// The commonest: the same value (0).
				buf <<= 1
				nb--
			} else if haveLT && buf>>62 == 0b10 && nb >= 2+mbits {
				// Then: within the previous leading and trailing
				// zeros (10).
				vbits ^= buf << 2 >> (64 - mbits) << trailing
				buf <<= 2 + mbits
				nb -= 2 + mbits
			} else if lb, mb := uint(buf<<2>>59), uint((buf<<7>>58-1)&63+1); nb >= 13 && buf>>62 == 0b11 && lb+mb <= 64 {
				// Then: new leading zeros (5 bits) and significant
				// bits (6, 0 meaning 64), then those bits (11).
				leading, trailing, haveLT = lb, 64-lb-mb, true
				buf <<= 13
				nb -= 13
				if nb < mb {
					r = bitReader{data, i, buf, nb}
					x, ok2 := r.bits(mb)
					if !ok2 {
						ok = false
						break
					}
					vbits ^= x << trailing
					i, buf, nb = r.i, r.buf, r.n
				} else {
					vbits ^= buf >> (64 - mb) << trailing
					buf <<= mb
					nb -= mb
				}
			} else {
				// What is rare or came short, bit by bit.
				r = bitReader{data, i, buf, nb}
				x, _ := r.bits(1)
				y, ok2 := r.bits(1)
				if !ok2 || x == 0 {
					ok = false // past the end
					break
				}
				if y == 1 {
					lb, _ := r.bits(5)
					mb, ok2 := r.bits(6)
					if !ok2 {
						ok = false
						break
					}
					if mb == 0 {
						mb = 64
					}
					if lb+mb > 64 {
						ok = false
						break
					}
					leading, trailing, haveLT = uint(lb), uint(64-lb-mb), true
				} else if !haveLT {
					ok = false // 10 before any 11
					break
				}
				x, ok2 = r.bits(64 - leading - trailing)
				if !ok2 {
					ok = false
					break
				}
				vbits ^= x << trailing
				i, buf, nb = r.i, r.buf, r.n
			}
		}
		if skipBefore && t < from {
			// Passed over, as the iterator's Seek passes over the
			// samples before the first at or after from.
		} else {
			skipBefore = false
			if t <= last {
				ok = false // overlapping chunks
				break
			}
			if t > to {
				break
			}
			last = t
			// fastSeries.add: stale markers dropped.
			if vbits != value.StaleNaN {
				ts[k], fs[k] = t, math.Float64frombits(vbits)
				k++
			}
		}
		read++
		if read == total {
			break
		}
		if read == 1 {
			d, n := binary.Uvarint(data)
			if n <= 0 {
				ok = false
				break
			}
			data = data[n:]
			tDelta = d
			t += int64(tDelta)
			continue
		}
		// The next timestamp's delta of delta.
		if nb < 16 {
			if i+8 <= len(data) {
				buf |= binary.BigEndian.Uint64(data[i:]) >> nb
				w := (64 - nb) >> 3
				i += int(w)
				nb += w * 8
			} else {
				r = bitReader{data, i, buf, nb}
				r.refill()
				i, buf, nb = r.i, r.buf, r.n
			}
		}
		if nb >= 1 && buf>>63 == 0 {
			// The commonest: the same delta (0).
			buf <<= 1
			nb--
			t += int64(tDelta)
			continue
		}
		if nb >= 16 && buf>>62 == 0b10 {
			// Then: jitter, 10 and 14 bits.
			x := buf << 2 >> 50
			buf <<= 16
			nb -= 16
			if x > 1<<13 {
				x -= 1 << 14
			}
			tDelta = uint64(int64(tDelta) + int64(x))
			t += int64(tDelta)
			continue
		}
		r = bitReader{data, i, buf, nb}
		var d uint
		for range 4 {
			x, ok2 := r.bits(1)
			if !ok2 {
				ok = false
				break
			}
			d = d<<1 | uint(x)
			if x == 0 {
				break
			}
		}
		if !ok {
			break
		}
		var dod int64
		var sz uint
		switch d {
		case 0b10:
			sz = 14
		case 0b110:
			sz = 17
		case 0b1110:
			sz = 20
		case 0b1111:
			x, ok2 := r.bits(64)
			if !ok2 {
				ok = false
			}
			dod = int64(x)
		}
		if sz != 0 {
			x, ok2 := r.bits(sz)
			if !ok2 {
				ok = false
			}
			if x > 1<<(sz-1) {
				x -= 1 << sz
			}
			dod = int64(x)
		}
		if !ok {
			break
		}
		i, buf, nb = r.i, r.buf, r.n
		tDelta = uint64(int64(tDelta) + dod)
		t += int64(tDelta)
	}
	b.ts, b.fs = ts[:k], fs[:k]
	return last, ok
}
