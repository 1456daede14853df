package numparse

import (
	"errors"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
)

func TestParseFloat(t *testing.T) {
	f := func(s string, want float64) {
		t.Helper()
		got, err := ParseFloat([]byte(s))
		if err != nil {
			t.Fatalf("ParseFloat(%q): unexpected error %v", s, err)
		}
		if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("ParseFloat(%q): got %v; want %v", s, got, want)
		}
	}
	f("0", 0)
	f("-0", math.Copysign(0, -1))
	f("1", 1)
	f("+1", 1)
	f("-12.5", -12.5)
	f("1.", 1)
	f(".5", 0.5)
	f("1e3", 1000)
	f("1E-3", 0.001)
	f("1.5e+2", 150)
	f("0.1", 0.1)
	f("123456789012345678", 123456789012345678)
	f("9007199254740993", 9007199254740993) // 2^53+1: needs correct rounding
	f("1e23", 1e23)
	f("1e-400", 0)
	f("2.2250738585072011e-308", 2.2250738585072011e-308)
	f("4.9406564584124654e-324", 5e-324)
	f("1.7976931348623157e308", math.MaxFloat64)
	f("0.30000000000000000000000000000001", 0.3)
	f("NaN", math.NaN())
	f("nan", math.NaN())
	f("+Inf", math.Inf(1))
	f("-Inf", math.Inf(-1))
	f("Inf", math.Inf(1))
	f("infinity", math.Inf(1))
	f("0e99999", 0)
	f("1.000e-03", 0.001)
}

func TestParseFloatError(t *testing.T) {
	f := func(s string, want error) {
		t.Helper()
		got, err := ParseFloat([]byte(s))
		if !errors.Is(err, want) {
			t.Fatalf("ParseFloat(%q): got %v, %v; want error %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "-", "+", ".", "e5", "1e", "1e+", "12x", "1..2", "0x1p3", "1_000", "--1", "1 ", " 1", "-nan", "Infx", "0x10"} {
		f(s, ErrSyntax)
	}
	f("1e400", ErrRange)
	f("-1e309", ErrRange)
}

func TestParseInt(t *testing.T) {
	f := func(s string, want int64, wantErr error) {
		t.Helper()
		got, err := ParseInt([]byte(s))
		if !errors.Is(err, wantErr) || got != want && wantErr == nil {
			t.Fatalf("ParseInt(%q): got %d, %v; want %d, %v", s, got, err, want, wantErr)
		}
	}
	f("0", 0, nil)
	f("-17", -17, nil)
	f("+17", 17, nil)
	f("1700000000000", 1700000000000, nil)
	f("9223372036854775807", math.MaxInt64, nil)
	f("-9223372036854775808", math.MinInt64, nil)
	f("9223372036854775808", 0, ErrRange)
	f("-9223372036854775809", 0, ErrRange)
	f("99999999999999999999999", 0, ErrRange)
	f("", 0, ErrSyntax)
	f("-", 0, ErrSyntax)
	f("1.5", 0, ErrSyntax)
	f("1e3", 0, ErrSyntax)
}

func TestParseUint(t *testing.T) {
	f := func(s string, want uint64, wantErr error) {
		t.Helper()
		got, err := ParseUint([]byte(s))
		if !errors.Is(err, wantErr) || got != want && wantErr == nil {
			t.Fatalf("ParseUint(%q): got %d, %v; want %d, %v", s, got, err, want, wantErr)
		}
	}
	f("0", 0, nil)
	f("18446744073709551615", math.MaxUint64, nil)
	f("18446744073709551616", 0, ErrRange)
	f("184467440737095516150", 0, ErrRange)
	f("-1", 0, ErrSyntax)
	f("", 0, ErrSyntax)
}

// FuzzParseFloat checks ParseFloat against strconv.ParseFloat, which it
// must match bit for bit on everything it accepts.
func FuzzParseFloat(f *testing.F) {
	seeds, err := os.ReadFile("testdata/floats.txt")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range strings.Split(string(seeds), "\n") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseFloat([]byte(s))
		want, werr := strconv.ParseFloat(s, 64)
		if err != nil {
			if werr == nil && !strings.ContainsAny(s, "pP_xX") {
				t.Fatalf("ParseFloat(%q): got error %v; strconv gives %v", s, err, want)
			}
			return
		}
		if werr != nil {
			t.Fatalf("ParseFloat(%q) = %v; strconv gives error %v", s, got, werr)
		}
		if math.Float64bits(got) != math.Float64bits(want) && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Fatalf("ParseFloat(%q): got %v; want %v", s, got, want)
		}
	})
}

func BenchmarkParseFloat(b *testing.B) {
	in := [][]byte{[]byte("123"), []byte("0.25"), []byte("1.5e-3"), []byte("1234567.875"), []byte("NaN"), []byte("0.1234567890123456789")}
	b.ReportAllocs()
	for b.Loop() {
		for _, s := range in {
			if _, err := ParseFloat(s); err != nil {
				b.Fatal(err)
			}
		}
	}
}
