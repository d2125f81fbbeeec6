package opsdash

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Code is what the Go source emits and logs.
type Code struct {
	Emissions []Emission
	// LogStrings are the string literals passed to slog-style calls (Info,
	// Warn, Error, Debug, Log, With, slog.String, ...): messages and keys.
	LogStrings map[string]bool
	// Problems are metric calls whose metric or dimensions the scan cannot read.
	Problems []string
}

// Emitted tells whether some call emits metric.
func (c *Code) Emitted(metric string) bool {
	for _, e := range c.Emissions {
		if e.Metric == metric {
			return true
		}
	}
	return false
}

// scanDirs are the folders of the module scanned for metric calls.
var scanDirs = []string{"internal", "cmd", "functions"}

// logCalls are the call names whose string literal arguments are log
// messages or attribute keys.
var logCalls = map[string]bool{
	"Debug": true, "Info": true, "Warn": true, "Error": true, "Log": true, "LogAttrs": true,
	"DebugContext": true, "InfoContext": true, "WarnContext": true, "ErrorContext": true,
	"With": true, "String": true, "Int": true, "Int64": true, "Uint64": true, "Float64": true,
	"Bool": true, "Time": true, "Duration": true, "Any": true, "Group": true,
}

// ScanCode parses the non-test Go files of the module at root (internal/,
// cmd/, functions/; internal/obs itself excluded) and lists their metric
// emissions and log strings.
func ScanCode(root string) (*Code, error) {
	mod, err := modulePath(filepath.Join(root, "go.mod"))
	if err != nil {
		return nil, err
	}
	obsDir := filepath.Join(root, "internal", "obs")
	consts, err := stringConsts(obsDir)
	if err != nil {
		return nil, err
	}
	sc := &scanner{
		root: root, obsPath: mod + "/internal/obs", consts: consts, fset: token.NewFileSet(),
		code: &Code{LogStrings: map[string]bool{}}, wrappers: map[string]wrapper{},
	}
	for _, d := range scanDirs {
		err := filepath.WalkDir(filepath.Join(root, d), func(path string, de fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if de.IsDir() {
				n := de.Name()
				if path == obsDir || n == "testdata" || (path != filepath.Join(root, d) && (strings.HasPrefix(n, ".") || strings.HasPrefix(n, "_"))) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			return sc.parse(path)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("opsdash: scan %s: %w", d, err)
		}
	}
	sc.resolveWrappers()
	sort.Slice(sc.code.Emissions, func(i, j int) bool {
		a, b := sc.code.Emissions[i], sc.code.Emissions[j]
		if a.Metric != b.Metric {
			return a.Metric < b.Metric
		}
		return a.Pos < b.Pos
	})
	return sc.code, nil
}

func modulePath(gomod string) (string, error) {
	f, err := os.Open(gomod)
	if err != nil {
		return "", fmt.Errorf("opsdash: %w", err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(s.Text()), "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", fmt.Errorf("opsdash: read %s: %w", gomod, err)
	}
	return "", fmt.Errorf("opsdash: %s has no module line", gomod)
}

// stringConsts returns the string constants declared in the non-test files of dir.
func stringConsts(dir string) (map[string]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("opsdash: %w", err)
	}
	fset := token.NewFileSet()
	out := map[string]string{}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".go") || strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, n), nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, fmt.Errorf("opsdash: %w", err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if s, ok := stringLit(vs.Values[i]); ok {
							out[name.Name] = s
						}
					}
				}
			}
		}
	}
	return out, nil
}

// wrapper is a function that emits the metric named by one of its string
// parameters, with fixed dimension keys (crmsync's count(name) is one).
type wrapper struct {
	param int
	dims  []string
}

// call is a call site kept for the wrapper pass.
type call struct {
	pkg     string // package folder, relative to root
	fn      string // the function the call sits in
	name    string // called function or method name
	args    []ast.Expr
	params  map[string]int
	obsName string
	pos     string
}

type scanner struct {
	root     string
	obsPath  string
	consts   map[string]string
	fset     *token.FileSet
	code     *Code
	wrappers map[string]wrapper // pkg + "." + func name
	calls    []call
}

func (sc *scanner) parse(path string) error {
	f, err := parser.ParseFile(sc.fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	rel, _ := filepath.Rel(sc.root, path)
	pkg := filepath.ToSlash(filepath.Dir(rel))
	obsName := ""
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p == sc.obsPath {
			obsName = "obs"
			if imp.Name != nil {
				obsName = imp.Name.Name
			}
		}
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		params := stringParams(fd.Type)
		ast.Inspect(fd.Body, func(n ast.Node) bool {
			ce, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sc.visitCall(pkg, fd.Name.Name, params, obsName, ce)
			return true
		})
	}
	return nil
}

// stringParams maps the names of a function's string parameters to their index.
func stringParams(ft *ast.FuncType) map[string]int {
	out := map[string]int{}
	i := 0
	for _, field := range ft.Params.List {
		id, isString := field.Type.(*ast.Ident)
		for _, n := range field.Names {
			if isString && id.Name == "string" {
				out[n.Name] = i
			}
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
	return out
}

func (sc *scanner) pos(n ast.Node) string {
	p := sc.fset.Position(n.Pos())
	rel, err := filepath.Rel(sc.root, p.Filename)
	if err != nil {
		rel = p.Filename
	}
	return fmt.Sprintf("%s:%d", filepath.ToSlash(rel), p.Line)
}

func (sc *scanner) visitCall(pkg, fn string, params map[string]int, obsName string, ce *ast.CallExpr) {
	var name string
	switch f := ce.Fun.(type) {
	case *ast.SelectorExpr:
		name = f.Sel.Name
	case *ast.Ident:
		name = f.Name
	}
	if logCalls[name] {
		for _, a := range ce.Args {
			if s, ok := stringLit(a); ok {
				sc.code.LogStrings[s] = true
			}
		}
	}
	sc.calls = append(sc.calls, call{pkg: pkg, fn: fn, name: name, args: ce.Args, params: params, obsName: obsName, pos: sc.pos(ce)})

	sel, ok := ce.Fun.(*ast.SelectorExpr)
	if !ok {
		return
	}
	var nameArg, dimsArg ast.Expr
	switch {
	case (sel.Sel.Name == "Count" || sel.Sel.Name == "Duration") && len(ce.Args) == 3:
		nameArg, dimsArg = ce.Args[0], ce.Args[2]
	case sel.Sel.Name == "Emit" && len(ce.Args) == 4:
		nameArg, dimsArg = ce.Args[0], ce.Args[3]
	default:
		return
	}
	dims, dimsOK := dimKeys(dimsArg, obsName)
	if metric, ok := sc.metricArg(nameArg, obsName); ok {
		if !dimsOK {
			sc.code.Problems = append(sc.code.Problems, problemf("%s: %s is emitted with dimensions the scan cannot read; pass nil or an obs.Dims{\"Key\": value} literal", sc.pos(ce), metric))
			return
		}
		sc.code.Emissions = append(sc.code.Emissions, Emission{Metric: metric, Dims: dims, Pos: sc.pos(ce)})
		return
	}
	if id, ok := nameArg.(*ast.Ident); ok && dimsOK {
		if i, isParam := params[id.Name]; isParam {
			sc.wrappers[pkg+"."+fn] = wrapper{param: i, dims: dims}
		}
	}
}

// metricArg reads a metric name argument: an obs string constant, or a string
// literal in a file that imports obs (elsewhere a Count/Duration/Emit call with a
// literal is someone else's API, e.g. flag.Duration("visibility", ...)).
func (sc *scanner) metricArg(e ast.Expr, obsName string) (string, bool) {
	if s, ok := stringLit(e); ok {
		return s, obsName != ""
	}
	sel, ok := e.(*ast.SelectorExpr)
	if !ok || obsName == "" {
		return "", false
	}
	x, ok := sel.X.(*ast.Ident)
	if !ok || x.Name != obsName {
		return "", false
	}
	v, ok := sc.consts[sel.Sel.Name]
	return v, ok
}

// dimKeys reads nil or an obs.Dims{"K": v, ...} literal.
func dimKeys(e ast.Expr, obsName string) ([]string, bool) {
	switch x := e.(type) {
	case *ast.Ident:
		return []string{}, x.Name == "nil"
	case *ast.CompositeLit:
		sel, ok := x.Type.(*ast.SelectorExpr)
		if !ok || sel.Sel.Name != "Dims" {
			return nil, false
		}
		if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != obsName {
			return nil, false
		}
		keys := make([]string, 0, len(x.Elts))
		for _, el := range x.Elts {
			kv, ok := el.(*ast.KeyValueExpr)
			if !ok {
				return nil, false
			}
			k, ok := stringLit(kv.Key)
			if !ok {
				return nil, false
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys, true
	}
	return nil, false
}

// resolveWrappers turns calls of wrappers into emissions; a wrapper that
// passes its own parameter on becomes a wrapper too.
func (sc *scanner) resolveWrappers() {
	done := map[int]bool{}
	for changed := true; changed; {
		changed = false
		for i, c := range sc.calls {
			w, ok := sc.wrappers[c.pkg+"."+c.name]
			if !ok || w.param >= len(c.args) {
				continue
			}
			if done[i] {
				continue
			}
			if metric, ok := sc.metricArg(c.args[w.param], c.obsName); ok {
				done[i] = true
				sc.code.Emissions = append(sc.code.Emissions, Emission{Metric: metric, Dims: w.dims, Pos: c.pos})
				continue
			}
			if id, ok := c.args[w.param].(*ast.Ident); ok {
				if p, isParam := c.params[id.Name]; isParam {
					// The enclosing function forwards its parameter: it is a wrapper too.
					done[i] = true
					if _, known := sc.wrappers[c.pkg+"."+c.fn]; !known {
						sc.wrappers[c.pkg+"."+c.fn] = wrapper{param: p, dims: w.dims}
						changed = true
					}
				}
			}
		}
	}
}

func stringLit(e ast.Expr) (string, bool) {
	bl, ok := e.(*ast.BasicLit)
	if !ok || bl.Kind != token.STRING {
		return "", false
	}
	s, err := strconv.Unquote(bl.Value)
	return s, err == nil
}
