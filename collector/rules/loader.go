package rules

import (
	"log/slog"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// Builtin is a rule file compiled into the collector (the dashboards'
// recording rules): loaded with the -rules.files, named Name in
// /api/v1/rules and errors.
type Builtin struct {
	Name string // e.g. builtin/dashboards.rules.yml
	Data []byte
}

// loader is the engine's GroupLoader: built-in rule files by name, the
// rest from disk, as Prometheus' FileLoader does.
type loader struct {
	builtin map[string][]byte
	parser  parser.Parser
}

func (l loader) Load(identifier string, ignoreUnknownFields bool, scheme model.ValidationScheme) (*rulefmt.RuleGroups, []error) {
	if data, ok := l.builtin[identifier]; ok {
		return rulefmt.Parse(data, ignoreUnknownFields, scheme, l.parser, slog.New(slog.DiscardHandler))
	}
	return rulefmt.ParseFile(identifier, ignoreUnknownFields, scheme, l.parser, slog.New(slog.DiscardHandler))
}

func (l loader) Parse(query string) (parser.Expr, error) { return l.parser.ParseExpr(query) }
