package staffapi

import (
	"context"
	"log/slog"
	"net/url"
	"slices"
	"strings"
)

// route is one entry of the routes table: a method, a path pattern whose
// segments are literals or {name} parameters, and the function that serves it.
type route struct {
	method  string
	pattern string
	segs    []string
	serve   func(ctx context.Context, r *request) (response, error)
	// public routes are served without authentication (the page shell only).
	public bool
}

// request is what a route's function sees: an authenticated, parsed request.
type request struct {
	ID        string            // API Gateway request id (echoed in errors and logs)
	Principal string            // who is calling (JWT email/sub, or the local token's name)
	Method    string            // upper case
	Path      string            // the path as routed (stage prefix removed)
	Params    map[string]string // path parameters by name, unescaped
	Query     url.Values
	Header    map[string]string // keys lower case
	Body      []byte            // decoded (base64 undone)
	Log       *slog.Logger      // carries request id, route and principal
}

// response is what a route's function returns. Body is sent as is; Binary bodies
// are base64-encoded for API Gateway (exports).
type response struct {
	Status int
	Header map[string]string
	Body   []byte
	Binary bool
}

// newRoute compiles one routes-table entry.
func newRoute(method, pattern string, serve func(context.Context, *request) (response, error)) route {
	return route{method: method, pattern: pattern, segs: splitPath(pattern), serve: serve}
}

// newPublicRoute compiles a routes-table entry served without authentication.
func newPublicRoute(method, pattern string, serve func(context.Context, *request) (response, error)) route {
	rt := newRoute(method, pattern, serve)
	rt.public = true
	return rt
}

// name is how logs identify the route ("POST /api/holds/{id}/approve").
func (rt route) name() string { return rt.method + " " + rt.pattern }

// match reports whether path segments fit the pattern, returning the parameters.
func (rt route) match(segs []string) (map[string]string, bool) {
	if len(segs) != len(rt.segs) {
		return nil, false
	}
	var params map[string]string
	for i, p := range rt.segs {
		if name, ok := paramName(p); ok {
			if segs[i] == "" {
				return nil, false
			}
			if params == nil {
				params = make(map[string]string, 1)
			}
			params[name] = segs[i]
			continue
		}
		if p != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// literals counts the literal segments before the first parameter, so that
// /api/sends/export is preferred over /api/sends/{id} whatever the table order.
func (rt route) literals() int {
	n := 0
	for _, p := range rt.segs {
		if _, ok := paramName(p); ok {
			break
		}
		n++
	}
	return n
}

func paramName(seg string) (string, bool) {
	if len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}' {
		return seg[1 : len(seg)-1], true
	}
	return "", false
}

// splitPath splits "/a/b/" into ["a", "b"]: one trailing slash is tolerated.
func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	p = strings.TrimSuffix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// routeResult is the outcome of looking a request up in the routes table.
type routeResult struct {
	route  *route
	params map[string]string
	allow  []string // methods the path supports, when the method does not match
}

// lookup finds the route for method and path. Path segments are unescaped
// before matching; a segment that does not unescape matches nothing.
func lookup(routes []route, method, path string) routeResult {
	raw := splitPath(path)
	segs := make([]string, len(raw))
	for i, s := range raw {
		u, err := url.PathUnescape(s)
		if err != nil {
			return routeResult{}
		}
		segs[i] = u
	}
	var best *route
	var bestParams map[string]string
	var allow []string
	for i := range routes {
		rt := &routes[i]
		params, ok := rt.match(segs)
		if !ok {
			continue
		}
		if rt.method != method {
			if !slices.Contains(allow, rt.method) {
				allow = append(allow, rt.method)
			}
			continue
		}
		if best == nil || rt.literals() > best.literals() {
			best, bestParams = rt, params
		}
	}
	if best != nil {
		return routeResult{route: best, params: bestParams}
	}
	slices.Sort(allow)
	return routeResult{allow: allow}
}
