package host

import (
	"bytes"
	"strconv"
)

// The helpers below parse kernel text files in place: they slice the read
// buffer and never allocate, so a collection cycle costs no garbage once the
// buffers have grown.

// nextLine returns the first line of data (without the newline) and the rest.
func nextLine(data []byte) (line, rest []byte) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		return data[:i], data[i+1:]
	}
	return data, nil
}

// fields splits line at runs of spaces and tabs into dst[:0] and returns it.
// It stops after cap(dst) fields, so a stack array bounds it and the caller
// ignores the rest of a long line (such as the intr line of /proc/stat).
func fields(line []byte, dst [][]byte) [][]byte {
	dst = dst[:0]
	i := 0
	for i < len(line) && len(dst) < cap(dst) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if j > i {
			dst = append(dst, line[i:j])
		}
		i = j
	}
	return dst
}

// parseUint parses a decimal unsigned integer.
func parseUint(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if n > (1<<64-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}

// parseFloat parses a decimal float such as the load averages.
func parseFloat(b []byte) (float64, bool) {
	if len(b) == 0 || len(b) > 64 {
		return 0, false
	}
	// The conversion does not escape: strconv copies the string into its
	// errors, so small inputs stay on the stack.
	v, err := strconv.ParseFloat(string(b), 64)
	return v, err == nil
}

// interner turns the byte slices of names that repeat every cycle (devices,
// cpus, metric names) into strings allocated once. It forgets everything when
// it grows past maxInterned, which bounds memory on hosts where interfaces
// and devices churn (containers' veth pairs).
type interner struct {
	m map[string]string
}

const maxInterned = 4096

func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	if in.m == nil || len(in.m) >= maxInterned {
		in.m = make(map[string]string)
	}
	s := string(b)
	in.m[s] = s
	return s
}
