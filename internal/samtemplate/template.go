// Package samtemplate reads template.yaml (a SAM / CloudFormation template)
// into a small model and evaluates its intrinsic functions, so that the local
// stack creates tables, queues and secrets from the template's own definitions
// and computes each function's environment from it.
//
// Short-form tags (!Ref, !GetAtt "A.B" or [A, B], !Sub string or [string, map],
// !Join, !If, !Equals, !Select, !Split, !FindInMap, !Base64, ...) are turned into
// their long forms ({"Ref": ...}, {"Fn::GetAtt": [...]}, ...), so property
// values are plain Go values: map[string]any, []any, string, int, float64,
// bool, nil.
//
// Use:
//
//	t, err := samtemplate.Load("template.yaml")
//	fns, err := t.Functions()               // typed views, Globals merged
//	tbl, err := t.Table("CoiflowTable")
//	r := samtemplate.NewResolver(t, physical) // physical: logical id -> Physical
//	env, err := r.StringMap(fns[0].Environment)
package samtemplate

import (
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Template is a parsed template.
type Template struct {
	Parameters map[string]Parameter
	Conditions map[string]any
	Mappings   map[string]any
	// Globals is the Globals section by kind ("Function", "Api", ...).
	Globals   map[string]map[string]any
	Resources map[string]Resource
	Outputs   map[string]any
}

// Parameter is one template parameter.
type Parameter struct {
	Type       string
	Default    any
	HasDefault bool
	// MaxValue is a Number parameter's MaxValue (nil when unset).
	MaxValue any
}

// Resource is one resource with its generic properties.
type Resource struct {
	LogicalID  string
	Type       string
	Properties map[string]any
	Metadata   map[string]any
	Condition  string
}

// Load reads and parses a template file.
func Load(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("samtemplate: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("samtemplate: %s: %w", path, err)
	}
	return t, nil
}

// Parse parses template YAML (or JSON).
func Parse(b []byte) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("empty template")
	}
	v, err := toValue(doc.Content[0])
	if err != nil {
		return nil, err
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("top level is %T, want a mapping", v)
	}
	t := &Template{
		Parameters: map[string]Parameter{},
		Globals:    map[string]map[string]any{},
		Resources:  map[string]Resource{},
	}
	t.Conditions, _ = top["Conditions"].(map[string]any)
	t.Mappings, _ = top["Mappings"].(map[string]any)
	t.Outputs, _ = top["Outputs"].(map[string]any)
	if ps, ok := top["Parameters"].(map[string]any); ok {
		for name, raw := range ps {
			m, ok := raw.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("parameter %s: not a mapping", name)
			}
			p := Parameter{}
			p.Type, _ = m["Type"].(string)
			p.Default, p.HasDefault = m["Default"]
			p.MaxValue = m["MaxValue"]
			t.Parameters[name] = p
		}
	}
	if gs, ok := top["Globals"].(map[string]any); ok {
		for kind, raw := range gs {
			m, ok := raw.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("globals %s: not a mapping", kind)
			}
			t.Globals[kind] = m
		}
	}
	rs, ok := top["Resources"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no Resources section")
	}
	for id, raw := range rs {
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("resource %s: not a mapping", id)
		}
		r := Resource{LogicalID: id}
		if r.Type, ok = m["Type"].(string); !ok || r.Type == "" {
			return nil, fmt.Errorf("resource %s: no Type", id)
		}
		r.Properties, _ = m["Properties"].(map[string]any)
		if r.Properties == nil {
			r.Properties = map[string]any{}
		}
		r.Metadata, _ = m["Metadata"].(map[string]any)
		r.Condition, _ = m["Condition"].(string)
		t.Resources[id] = r
	}
	return t, nil
}

// ResourcesOfType returns the resources of one type, sorted by logical id.
func (t *Template) ResourcesOfType(typ string) []Resource {
	var out []Resource
	for _, r := range t.Resources {
		if r.Type == typ {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LogicalID < out[j].LogicalID })
	return out
}

// toValue converts a YAML node to a plain Go value, expanding short-form
// intrinsic tags to their long form.
func toValue(n *yaml.Node) (any, error) {
	if n.Kind == yaml.AliasNode {
		return toValue(n.Alias)
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return intrinsic(n)
	}
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil, nil
		}
		return toValue(n.Content[0])
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.Tag == "!!merge" {
				merged, err := toValue(v)
				if err != nil {
					return nil, err
				}
				if mm, ok := merged.(map[string]any); ok {
					for mk, mv := range mm {
						if _, exists := m[mk]; !exists {
							m[mk] = mv
						}
					}
				}
				continue
			}
			val, err := toValue(v)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.Value, err)
			}
			m[k.Value] = val
		}
		return m, nil
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, err := toValue(c)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			s = append(s, v)
		}
		return s, nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		return v, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node kind %d", n.Line, n.Kind)
}

// intrinsic expands a short-form tag (!Ref x, !GetAtt a.b, !Sub ...) to the
// long form map.
func intrinsic(n *yaml.Node) (any, error) {
	tag := strings.TrimPrefix(n.Tag, "!")
	// Decode the tagged node's content without its tag.
	plain := *n
	plain.Tag = ""
	switch n.Kind {
	case yaml.ScalarNode:
		plain.Tag = "!!str"
	case yaml.MappingNode:
		plain.Tag = "!!map"
	case yaml.SequenceNode:
		plain.Tag = "!!seq"
	}
	inner, err := toValue(&plain)
	if err != nil {
		return nil, fmt.Errorf("!%s: %w", tag, err)
	}
	switch tag {
	case "Ref":
		return map[string]any{"Ref": inner}, nil
	case "Condition":
		return map[string]any{"Condition": inner}, nil
	case "GetAtt":
		if s, ok := inner.(string); ok {
			res, attr, found := strings.Cut(s, ".")
			if !found {
				return nil, fmt.Errorf("line %d: !GetAtt %q has no attribute", n.Line, s)
			}
			return map[string]any{"Fn::GetAtt": []any{res, attr}}, nil
		}
		return map[string]any{"Fn::GetAtt": inner}, nil
	case "":
		return nil, fmt.Errorf("line %d: empty tag", n.Line)
	}
	return map[string]any{"Fn::" + tag: inner}, nil
}
