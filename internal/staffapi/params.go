package staffapi

import (
	"slices"
	"strconv"
	"strings"
)

// Paging bounds (the pipeline's own: default 50, max 500).
const (
	defaultLimit = 50
	maxLimit     = 500
)

// onlyParams refuses query parameters other than allowed (a misspelt filter
// must not silently widen a search), naming the first unknown one.
func onlyParams(r *request, allowed ...string) error {
	keys := make([]string, 0, len(r.Query))
	for k := range r.Query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return badParam(k, "this route takes no query parameters")
			}
			return badParam(k, "unknown parameter (this route takes %s)", strings.Join(allowed, ", "))
		}
	}
	return nil
}

// single returns the trimmed value of a parameter given at most once ("" when
// absent).
func single(r *request, name string) (string, error) {
	vs := r.Query[name]
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return strings.TrimSpace(vs[0]), nil
	default:
		return "", badParam(name, "given more than once")
	}
}

// oneOf returns the parameter's value when it is one of allowed (compared
// case-insensitively when fold is set, else exactly; "" when absent).
func oneOf(r *request, name string, allowed []string, fold bool) (string, error) {
	v, err := single(r, name)
	if err != nil || v == "" {
		return "", err
	}
	for _, a := range allowed {
		if v == a || (fold && strings.EqualFold(v, a)) {
			return a, nil
		}
	}
	return "", badParam(name, "want one of %s", strings.Join(allowed, ", "))
}

// limitParam reads limit: an integer 1..maxLimit, defaultLimit when absent.
func limitParam(r *request) (int, error) {
	v, err := single(r, "limit")
	if err != nil {
		return 0, err
	}
	if v == "" {
		return defaultLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, badParam("limit", "want an integer from 1 to %d", maxLimit)
	}
	return n, nil
}
