package apigw

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
)

// Route is one HttpApi event of a function in template.yaml: a method (or "ANY")
// and a path template whose segments are literals, {name} parameters, or a final
// greedy {name+} parameter.
type Route struct {
	Method   string
	Path     string
	Function string
}

// Key is the route key API Gateway puts in the event: "POST /webhooks/cowbell/{token}".
func (r Route) Key() string { return r.Method + " " + r.Path }

type segKind int

const (
	segLiteral segKind = iota
	segParam
	segGreedy
)

type segment struct {
	kind  segKind
	value string // the literal, or the parameter name
}

type compiledRoute struct {
	Route
	segs []segment
}

func compile(r Route) (compiledRoute, error) {
	m := strings.ToUpper(strings.TrimSpace(r.Method))
	switch m {
	case "ANY", http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead, http.MethodOptions:
	default:
		return compiledRoute{}, fmt.Errorf("route %q: unsupported method %q", r.Path, r.Method)
	}
	r.Method = m
	if !strings.HasPrefix(r.Path, "/") {
		return compiledRoute{}, fmt.Errorf("route %q: path must start with /", r.Path)
	}
	if r.Function == "" {
		return compiledRoute{}, fmt.Errorf("route %s: no function", r.Key())
	}
	c := compiledRoute{Route: r}
	if r.Path == "/" {
		return c, nil
	}
	parts := strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
	for i, p := range parts {
		switch {
		case p == "":
			return compiledRoute{}, fmt.Errorf("route %q: empty path segment", r.Path)
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "+}"):
			if i != len(parts)-1 {
				return compiledRoute{}, fmt.Errorf("route %q: greedy parameter %s must be last", r.Path, p)
			}
			c.segs = append(c.segs, segment{segGreedy, p[1 : len(p)-2]})
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			c.segs = append(c.segs, segment{segParam, p[1 : len(p)-1]})
		default:
			c.segs = append(c.segs, segment{segLiteral, p})
		}
	}
	return c, nil
}

// match reports whether method and the escaped path match c, and the (decoded)
// path parameters when they do.
func (c compiledRoute) match(method, rawPath string) (map[string]string, bool) {
	if c.Method != "ANY" && c.Method != method {
		return nil, false
	}
	var parts []string
	if rawPath != "/" && rawPath != "" {
		parts = strings.Split(strings.TrimPrefix(rawPath, "/"), "/")
	}
	var params map[string]string
	set := func(k, v string) {
		if params == nil {
			params = map[string]string{}
		}
		params[k] = v
	}
	for i, s := range c.segs {
		if s.kind == segGreedy {
			rest := strings.Join(parts[min(i, len(parts)):], "/")
			if rest == "" {
				return nil, false // API Gateway's {proxy+} needs at least one segment
			}
			set(s.value, unescape(rest))
			return params, true
		}
		if i >= len(parts) {
			return nil, false
		}
		switch s.kind {
		case segLiteral:
			if unescape(parts[i]) != s.value {
				return nil, false
			}
		case segParam:
			if parts[i] == "" {
				return nil, false
			}
			set(s.value, unescape(parts[i]))
		}
	}
	if len(parts) != len(c.segs) {
		return nil, false
	}
	return params, true
}

func unescape(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	return s
}

// less orders routes most specific first, the way API Gateway picks among
// several matches: segment by segment a literal beats a parameter, which beats a
// greedy parameter; then longer paths first; then a named method before ANY.
func less(a, b compiledRoute) bool {
	n := min(len(a.segs), len(b.segs))
	for i := range n {
		if a.segs[i].kind != b.segs[i].kind {
			return a.segs[i].kind < b.segs[i].kind
		}
	}
	if len(a.segs) != len(b.segs) {
		return len(a.segs) > len(b.segs)
	}
	if (a.Method == "ANY") != (b.Method == "ANY") {
		return b.Method == "ANY"
	}
	return a.Key() < b.Key()
}

// router holds compiled routes in match order.
type router struct{ routes []compiledRoute }

func newRouter(routes []Route) (*router, error) {
	seen := map[string]string{}
	rt := &router{}
	for _, r := range routes {
		c, err := compile(r)
		if err != nil {
			return nil, err
		}
		if other, dup := seen[c.Key()]; dup {
			return nil, fmt.Errorf("route %s is defined by both %s and %s", c.Key(), other, c.Function)
		}
		seen[c.Key()] = c.Function
		rt.routes = append(rt.routes, c)
	}
	sort.SliceStable(rt.routes, func(i, j int) bool { return less(rt.routes[i], rt.routes[j]) })
	return rt, nil
}

func (rt *router) find(method, path string) (compiledRoute, map[string]string, bool) {
	for _, c := range rt.routes {
		if params, ok := c.match(method, path); ok {
			return c, params, true
		}
	}
	return compiledRoute{}, nil, false
}
