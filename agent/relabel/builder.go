package relabel

import (
	"slices"
	"strings"

	"github.com/telltale-dev/telltale/samples"
)

// Builder edits a label set the way Prometheus' labels.Builder does, so
// relabeling visits labels in the same order and gives the same results:
// the base labels (sorted by name) minus the deleted ones, then the set
// ones in the order they were first set. An empty value means "absent":
// Set(name, "") deletes, and Get of an absent label is "".
//
// The zero value is an empty Builder. A Builder is not safe for concurrent
// use; reuse one with Reset to avoid allocations.
type Builder struct {
	base []samples.Label
	add  []samples.Label
	del  []string
	// scratch for Range's snapshot
	rangeAdd []samples.Label
	rangeDel []string
}

// Reset makes base (sorted by name, unique names) the Builder's labels.
// The Builder keeps base and reads it until the next Reset; it never
// writes to it.
func (b *Builder) Reset(base []samples.Label) {
	b.base = base
	b.add = b.add[:0]
	b.del = b.del[:0]
	for _, l := range base {
		if l.Value == "" {
			b.del = append(b.del, l.Name)
		}
	}
}

// Get returns the value of the label name, or "" when it is absent.
func (b *Builder) Get(name string) string {
	for _, a := range b.add {
		if a.Name == name {
			return a.Value
		}
	}
	if slices.Contains(b.del, name) {
		return ""
	}
	for _, l := range b.base {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// Set sets the label name to value; an empty value deletes it.
func (b *Builder) Set(name, value string) {
	if value == "" {
		b.Del(name)
		return
	}
	for i := range b.add {
		if b.add[i].Name == name {
			b.add[i].Value = value
			return
		}
	}
	b.add = append(b.add, samples.Label{Name: name, Value: value})
}

// Del deletes the label name.
func (b *Builder) Del(name string) {
	if i := slices.IndexFunc(b.add, func(a samples.Label) bool { return a.Name == name }); i >= 0 {
		b.add = slices.Delete(b.add, i, i+1)
	}
	b.del = append(b.del, name)
}

// Range calls f for every label, over a snapshot taken when Range starts:
// f may call Set and Del.
func (b *Builder) Range(f func(l samples.Label)) {
	add := append(b.rangeAdd[:0], b.add...)
	del := append(b.rangeDel[:0], b.del...)
	b.rangeAdd, b.rangeDel = add[:0], del[:0]
	for _, l := range b.base {
		if !slices.Contains(del, l.Name) && !slices.ContainsFunc(add, func(a samples.Label) bool { return a.Name == l.Name }) {
			f(l)
		}
	}
	for _, a := range add {
		f(a)
	}
}

// Labels appends the resulting labels, sorted by name, to dst and returns
// it.
func (b *Builder) Labels(dst []samples.Label) []samples.Label {
	slices.SortFunc(b.add, func(x, y samples.Label) int { return strings.Compare(x.Name, y.Name) })
	a := 0
	for _, l := range b.base {
		for a < len(b.add) && b.add[a].Name < l.Name {
			dst = append(dst, b.add[a])
			a++
		}
		if a < len(b.add) && b.add[a].Name == l.Name {
			dst = append(dst, b.add[a])
			a++
			continue
		}
		if l.Value == "" || slices.Contains(b.del, l.Name) {
			continue
		}
		dst = append(dst, l)
	}
	return append(dst, b.add[a:]...)
}

// ExportedPrefix is what a scraped label that collides with a target label
// is renamed with when honor_labels is false (Prometheus'
// model.ExportedLabelPrefix).
const ExportedPrefix = "exported_"

// MergeTarget applies a target's labels to a scraped series in b as
// Prometheus' scrape loop does (mutateSampleLabels). With honor true the
// series' own labels win and target labels fill only the names it lacks
// (honor_labels: true). Otherwise the target labels win and a series label
// they displace is kept as exported_<name> (exported_exported_<name> when
// that is taken too, and so on; shorter names first). target must not hold
// labels starting with "__".
func (b *Builder) MergeTarget(target []samples.Label, honor bool) {
	if honor {
		for _, l := range target {
			if b.Get(l.Name) == "" {
				b.Set(l.Name, l.Value)
			}
		}
		return
	}
	var stack [8]samples.Label
	conflicts := stack[:0]
	for _, l := range target {
		if v := b.Get(l.Name); v != "" {
			conflicts = append(conflicts, samples.Label{Name: l.Name, Value: v})
		}
		b.Set(l.Name, l.Value)
	}
	slices.SortStableFunc(conflicts, func(x, y samples.Label) int { return len(x.Name) - len(y.Name) })
	for _, l := range conflicts {
		name := l.Name
		for {
			name = ExportedPrefix + name
			if b.Get(name) == "" {
				b.Set(name, l.Value)
				break
			}
		}
	}
}
