package nowcertssandbox

import (
	"net/http"
	"slices"
	"strconv"
)

var canonical = map[string]string{
	"certificateholderlist":           "CertificateHolderList",
	"historicalcertificateholderlist": "HistoricalCertificateHolderList",
	"certificateslist":                "CertificatesList",
}

// list answers an OData list endpoint (ep in lower case, without "()").
func (s *Sandbox) list(ep string, r *http.Request) response {
	q := r.URL.Query()
	odataErr := func(msg string) response {
		return answer(http.StatusBadRequest, map[string]any{"error": map[string]any{"code": "", "message": msg}})
	}
	for k := range q {
		switch k {
		case "$top", "$skip", "$orderby", "$filter", "$count", "$select":
		default:
			if len(k) > 0 && k[0] == '$' {
				return odataErr("The query parameter '" + k + "' is not supported.")
			}
		}
	}
	if !s.opts.LenientPaging && (!q.Has("$top") || !q.Has("$skip")) {
		return odataErr("$top and $skip are required on this endpoint.")
	}
	top, skip := -1, 0
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return odataErr("Invalid value '" + v + "' for $top query option found.")
		}
		top = n
	}
	if v := q.Get("$skip"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return odataErr("Invalid value '" + v + "' for $skip query option found.")
		}
		skip = n
	}
	withCount := false
	if v := q.Get("$count"); v != "" {
		switch v {
		case "true":
			withCount = true
		case "false":
		default:
			return odataErr("'" + v + "' is not a valid count option.")
		}
	}

	var (
		sch  schema
		rows []fields
		objs []any
	)
	s.mu.Lock()
	switch ep {
	case "certificateholderlist":
		sch = holderSchema
		for _, h := range s.holders {
			rows, objs = append(rows, h.fields()), append(objs, h.fields())
		}
	case "historicalcertificateholderlist":
		sch = historicalSchema
		for _, h := range s.historical {
			rows, objs = append(rows, h.fields()), append(objs, h.fields())
		}
	default:
		sch = certificateSchema
		for _, c := range s.certs {
			rows, objs = append(rows, c.fields()), append(objs, c.fields())
		}
	}
	s.mu.Unlock()

	type item struct {
		f fields
		o any
	}
	items := make([]item, 0, len(rows))
	pred := func(fields) bool { return true }
	if f := q.Get("$filter"); f != "" {
		p, err := parseFilter(f, sch)
		if err != nil {
			return odataErr("The query specified in the URI is not valid. " + err.Error())
		}
		pred = p
	}
	for i := range rows {
		if pred(rows[i]) {
			items = append(items, item{rows[i], objs[i]})
		}
	}
	if ob := q.Get("$orderby"); ob != "" {
		keys, err := parseOrderBy(ob, sch)
		if err != nil {
			return odataErr("The query specified in the URI is not valid. " + err.Error())
		}
		slices.SortStableFunc(items, func(a, b item) int { return compareFields(a.f, b.f, keys) })
	}
	total := len(items)
	if skip > len(items) {
		skip = len(items)
	}
	items = items[skip:]
	if top >= 0 && top < len(items) {
		items = items[:top]
	}
	value := make([]any, len(items))
	for i, it := range items {
		value[i] = it.o
	}
	body := map[string]any{"@odata.context": "https://api.nowcerts.com/api/$metadata#" + canonical[ep], "value": value}
	if withCount {
		body["@odata.count"] = total
	}
	return answer(http.StatusOK, body)
}
