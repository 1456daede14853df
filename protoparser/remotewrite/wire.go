package remotewrite

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"unsafe"
)

// Protobuf wire types.
const (
	wtVarint  = 0
	wtFixed64 = 1
	wtLen     = 2
	wtFixed32 = 5
)

var wireTypeNames = [8]string{"varint", "fixed64", "length-delimited", "start-group", "end-group", "fixed32", "6", "7"}

// readVarint reads a varint at b[i:]. It returns the value and the index
// after it, or an error for a truncated or over-long varint.
func readVarint(b []byte, i int) (uint64, int, error) {
	if i < len(b) && b[i] < 0x80 {
		return uint64(b[i]), i + 1, nil
	}
	var x uint64
	for shift, j := uint(0), i; j < len(b); shift, j = shift+7, j+1 {
		c := b[j]
		if shift == 63 && c > 1 {
			return 0, 0, fmt.Errorf("malformed varint at byte %d: more than 64 bits", i)
		}
		x |= uint64(c&0x7f) << shift
		if c < 0x80 {
			return x, j + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("truncated varint at byte %d", i)
}

// readTag reads a field tag at b[i:].
func readTag(b []byte, i int) (field uint64, wt int, next int, err error) {
	tag, next, err := readVarint(b, i)
	if err != nil {
		return 0, 0, 0, err
	}
	field, wt = tag>>3, int(tag&7)
	if field == 0 {
		return 0, 0, 0, fmt.Errorf("invalid field number 0 at byte %d", i)
	}
	return field, wt, next, nil
}

// readBytes reads a length-delimited field's contents at b[i:]; kind
// ("message", "string") names it in errors.
func readBytes(b []byte, i int, kind string) ([]byte, int, error) {
	n, j, err := readVarint(b, i)
	if err != nil {
		return nil, 0, err
	}
	if n > uint64(len(b)-j) {
		return nil, 0, fmt.Errorf("truncated %s (want %d bytes, have %d)", kind, n, len(b)-j)
	}
	end := j + int(n)
	return b[j:end], end, nil
}

// readString reads a string field at b[i:], aliasing b.
func readString(b []byte, i int) (string, int, error) {
	v, next, err := readBytes(b, i, "string")
	if err != nil {
		return "", 0, err
	}
	return unsafe.String(unsafe.SliceData(v), len(v)), next, nil
}

func readFixed64(b []byte, i int) (uint64, int, error) {
	if len(b)-i < 8 {
		return 0, 0, fmt.Errorf("truncated fixed64 (want 8 bytes, have %d)", len(b)-i)
	}
	return binary.LittleEndian.Uint64(b[i:]), i + 8, nil
}

// skipField skips the value of a field of wire type wt at b[i:].
func skipField(b []byte, i int, field uint64, wt int) (int, error) {
	switch wt {
	case wtVarint:
		_, next, err := readVarint(b, i)
		return next, err
	case wtFixed64:
		if len(b)-i < 8 {
			return 0, fmt.Errorf("field %d: truncated fixed64 (want 8 bytes, have %d)", field, len(b)-i)
		}
		return i + 8, nil
	case wtLen:
		_, next, err := readBytes(b, i, "field")
		if err != nil {
			return 0, fmt.Errorf("field %d: %w", field, err)
		}
		return next, nil
	case wtFixed32:
		if len(b)-i < 4 {
			return 0, fmt.Errorf("field %d: truncated fixed32 (want 4 bytes, have %d)", field, len(b)-i)
		}
		return i + 4, nil
	default:
		return 0, fmt.Errorf("field %d: unsupported wire type %d (%s)", field, wt, wireTypeNames[wt])
	}
}

// wrongWireType describes a known field sent with an unexpected wire type.
func wrongWireType(name string, got, want int) error {
	return fmt.Errorf("%s: wrong wire type %s; want %s", name, wireTypeNames[got], wireTypeNames[want])
}

// Encoding helpers.

func varintLen(x uint64) int {
	return (bits.Len64(x|1) + 6) / 7
}

// stringFieldLen is the encoded size of a proto3 string field (tag below 16),
// which is omitted when empty.
func stringFieldLen(s string) int {
	if len(s) == 0 {
		return 0
	}
	return 1 + varintLen(uint64(len(s))) + len(s)
}

func appendStringField(dst []byte, tag byte, s string) []byte {
	if len(s) == 0 {
		return dst
	}
	dst = append(dst, tag)
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// sampleLen is the encoded size of a Sample message with value v and
// timestamp t (the same in 1.0 and 2.0): proto3 omits zero fields.
func sampleLen(t int64, v float64) int {
	n := 0
	if v != 0 {
		n += 9
	}
	if t != 0 {
		n += 1 + varintLen(uint64(t))
	}
	return n
}

func appendSample(dst []byte, t int64, v float64) []byte {
	dst = append(dst, 0x12) // field 2 of TimeSeries in both versions
	dst = binary.AppendUvarint(dst, uint64(sampleLen(t, v)))
	if v != 0 {
		dst = append(dst, 0x09)
		dst = binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
	}
	if t != 0 {
		dst = append(dst, 0x10)
		dst = binary.AppendUvarint(dst, uint64(t))
	}
	return dst
}
