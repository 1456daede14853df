// Package numparse parses the decimal numbers of Telltale's text formats
// (Prometheus text exposition, Influx line protocol) straight from byte
// slices, without allocating.
//
// ParseFloat accepts what Prometheus' text parser accepts: Go float syntax
// as strconv.ParseFloat reads it (decimal and exponent forms, NaN, Inf,
// +Inf, -Inf in any letter case) except hexadecimal floats and digit
// underscores. Common values (integers and decimals of up to 19 digits with
// small exponents) take an exact fast path; everything else is handed to
// strconv, so results are always correctly rounded.
package numparse

import (
	"errors"
	"strconv"
	"unsafe"
)

// ErrSyntax reports a malformed number.
var ErrSyntax = errors.New("invalid syntax")

// ErrRange reports a number outside the range of its type.
var ErrRange = errors.New("value out of range")

// pow10 holds the powers of ten that float64 represents exactly.
var pow10 = [...]float64{1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
	1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22}

// ParseFloat parses s as a float64. It returns ErrSyntax for malformed input
// and ErrRange (with the value ±Inf) for a finite number too large for a
// float64.
func ParseFloat(s []byte) (float64, error) {
	if f, ok := fastFloat(s); ok {
		return f, nil
	}
	return slowFloat(s)
}

// fastFloat parses plain decimals whose mantissa and power of ten are both
// exact in float64 (Clinger's fast path). ok is false when it cannot.
func fastFloat(s []byte) (float64, bool) {
	i := 0
	neg := false
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		neg = s[i] == '-'
		i++
	}
	var mant uint64
	digits := 0
	exp := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		mant = mant*10 + uint64(s[i]-'0')
		digits++
		i++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			mant = mant*10 + uint64(s[i]-'0')
			digits++
			exp--
			i++
		}
	}
	if digits == 0 || digits > 19 {
		return 0, false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		eneg := false
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			eneg = s[i] == '-'
			i++
		}
		start := i
		e := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if i-start >= 4 {
				return 0, false
			}
			e = e*10 + int(s[i]-'0')
			i++
		}
		if i == start {
			return 0, false
		}
		if eneg {
			e = -e
		}
		exp += e
	}
	if i != len(s) || mant > 1<<53 {
		return 0, false
	}
	f := float64(mant)
	switch {
	case exp == 0:
	case exp > 0 && exp <= 22:
		f *= pow10[exp]
	case exp < 0 && exp >= -22:
		f /= pow10[-exp]
	default:
		if mant != 0 {
			return 0, false
		}
	}
	if neg {
		f = -f
	}
	return f, true
}

func slowFloat(s []byte) (float64, error) {
	for _, c := range s {
		// Like Prometheus: no hexadecimal floats, no digit separators.
		if c == 'p' || c == 'P' || c == '_' || c == 'x' || c == 'X' {
			return 0, ErrSyntax
		}
	}
	f, err := strconv.ParseFloat(unsafe.String(unsafe.SliceData(s), len(s)), 64)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return f, ErrRange
		}
		return 0, ErrSyntax
	}
	return f, nil
}

// IsDecimal reports whether s consists only of the characters of a decimal
// float (digits, sign, point, exponent), so that ParseFloat will not read it
// as NaN or Inf. The Influx line protocol has no NaN or Inf.
func IsDecimal(s []byte) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E') {
			return false
		}
	}
	return true
}

// ParseInt parses s, a decimal integer with an optional sign, as an int64.
func ParseInt(s []byte) (int64, error) {
	i := 0
	neg := false
	if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		i++
	}
	if i == len(s) {
		return 0, ErrSyntax
	}
	var n uint64
	for ; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, ErrSyntax
		}
		if n > (1<<63)/10 {
			return 0, ErrRange
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<63 {
			return 0, ErrRange
		}
	}
	if neg {
		return -int64(n), nil // -int64(1<<63) wraps to MinInt64, which is right
	}
	if n > 1<<63-1 {
		return 0, ErrRange
	}
	return int64(n), nil
}

// ParseUint parses s, a decimal integer without sign, as a uint64.
func ParseUint(s []byte) (uint64, error) {
	if len(s) == 0 {
		return 0, ErrSyntax
	}
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, ErrSyntax
		}
		if n > (1<<64-1)/10 {
			return 0, ErrRange
		}
		d := uint64(c - '0')
		if n*10 > 1<<64-1-d {
			return 0, ErrRange
		}
		n = n*10 + d
	}
	return n, nil
}
