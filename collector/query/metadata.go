package query

import (
	"encoding/json"
	"net/http"
	"strconv"
)

type metadataEntry struct {
	Type string `json:"type"`
	Help string `json:"help"`
	Unit string `json:"unit"`
}

// metadata serves /api/v1/metadata in Prometheus' shape (metric family
// name to a list of {type, help, unit}) from the metadata that pushes and
// remote writes carried; metric, limit and limit_per_metric work as in
// Prometheus.
func (a *API) metadata(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeAPIError(w, http.StatusMethodNotAllowed, "bad_data", "method "+r.Method+" not allowed; use GET")
		return
	}
	limit := -1
	if s := r.FormValue("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", "limit must be a number")
			return
		}
		limit = n
	}
	if s := r.FormValue("limit_per_metric"); s != "" {
		if _, err := strconv.Atoi(s); err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_data", "limit_per_metric must be a number")
			return
		}
		// The collector keeps one entry per metric family, so any limit
		// per metric of at least one changes nothing.
	}
	out := map[string][]metadataEntry{}
	if a.opts.Metadata != nil && limit != 0 {
		for _, m := range a.opts.Metadata.List(r.FormValue("metric"), max(limit, 0)) {
			out[m.Name] = []metadataEntry{{Type: m.Type, Help: m.Help, Unit: m.Unit}}
		}
	}
	b, err := json.Marshal(struct {
		Status string                     `json:"status"`
		Data   map[string][]metadataEntry `json:"data"`
	}{"success", out})
	if err != nil {
		writeAPIError(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
