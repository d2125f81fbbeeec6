package samtemplate

import (
	"encoding/base64"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Physical is what a deployed (or locally provisioned) resource resolves to:
// its Ref value and its GetAtt attributes (e.g. "Arn", "QueueName").
type Physical struct {
	Ref   string
	Attrs map[string]string
}

// Resolver evaluates intrinsic functions against physical resource values and
// parameter values.
type Resolver struct {
	Template *Template
	// Resources maps logical ids to physical values.
	Resources map[string]Physical
	// Parameters overrides parameter defaults (a CommaDelimitedList as "a,b").
	Parameters map[string]string
	// Pseudo sets pseudo parameters ("AWS::Region", "AWS::AccountId",
	// "AWS::StackName", ...); defaults (us-east-1, account 123456789012) fill the rest.
	Pseudo map[string]string
}

// defaultPseudo are the pseudo parameters used when Resolver.Pseudo lacks one.
var defaultPseudo = map[string]string{
	"AWS::Region":           "us-east-1",
	"AWS::AccountId":        "123456789012",
	"AWS::Partition":        "aws",
	"AWS::URLSuffix":        "amazonaws.com",
	"AWS::StackName":        "coiflow-local",
	"AWS::StackId":          "arn:aws:cloudformation:us-east-1:123456789012:stack/coiflow-local/local",
	"AWS::NoValue":          "",
	"AWS::NotificationARNs": "",
}

// NewResolver returns a resolver over t with the given physical values
// (nil: only parameters and pseudo parameters resolve).
func NewResolver(t *Template, resources map[string]Physical) *Resolver {
	if resources == nil {
		resources = map[string]Physical{}
	}
	return &Resolver{Template: t, Resources: resources, Parameters: map[string]string{}, Pseudo: map[string]string{}}
}

// noValue is what Ref AWS::NoValue evaluates to; maps and lists drop it.
type noValue struct{}

// Resolve evaluates every intrinsic function in v.
func (r *Resolver) Resolve(v any) (any, error) {
	out, err := r.eval(v)
	if err != nil {
		return nil, err
	}
	if _, ok := out.(noValue); ok {
		return nil, nil
	}
	return out, nil
}

// String resolves v to a string (numbers and booleans are formatted).
func (r *Resolver) String(v any) (string, error) {
	x, err := r.Resolve(v)
	if err != nil {
		return "", err
	}
	return scalarString(x)
}

// Int resolves v to an integer.
func (r *Resolver) Int(v any) (int, error) {
	x, err := r.Resolve(v)
	if err != nil {
		return 0, err
	}
	if n, ok := asInt(x); ok {
		return n, nil
	}
	if s, ok := x.(string); ok {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("samtemplate: %v is not an integer", x)
}

// StringMap resolves every value of m to a string (for environment variables).
func (r *Resolver) StringMap(m map[string]any) (map[string]string, error) {
	out := make(map[string]string, len(m))
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s, err := r.String(m[k])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		out[k] = s
	}
	return out, nil
}

// Parameter returns the value of a parameter: the override, else its default.
func (r *Resolver) Parameter(name string) (any, error) {
	p, ok := r.Template.Parameters[name]
	if !ok {
		return nil, fmt.Errorf("samtemplate: no parameter %s", name)
	}
	if s, ok := r.Parameters[name]; ok {
		if strings.HasPrefix(p.Type, "CommaDelimitedList") || strings.HasPrefix(p.Type, "List<") {
			return splitList(s), nil
		}
		return s, nil
	}
	if !p.HasDefault {
		return nil, fmt.Errorf("samtemplate: parameter %s has no default and no value", name)
	}
	if s, ok := p.Default.(string); ok && (strings.HasPrefix(p.Type, "CommaDelimitedList") || strings.HasPrefix(p.Type, "List<")) {
		return splitList(s), nil
	}
	return p.Default, nil
}

func splitList(s string) []any {
	if s == "" {
		return []any{}
	}
	parts := strings.Split(s, ",")
	out := make([]any, len(parts))
	for i, p := range parts {
		out[i] = strings.TrimSpace(p)
	}
	return out
}

func (r *Resolver) ref(name string) (any, error) {
	if strings.HasPrefix(name, "AWS::") {
		if name == "AWS::NoValue" {
			return noValue{}, nil
		}
		if v, ok := r.Pseudo[name]; ok {
			return v, nil
		}
		if v, ok := defaultPseudo[name]; ok {
			return v, nil
		}
		return nil, fmt.Errorf("samtemplate: unknown pseudo parameter %s", name)
	}
	if _, ok := r.Template.Parameters[name]; ok {
		return r.Parameter(name)
	}
	if ph, ok := r.Resources[name]; ok {
		return ph.Ref, nil
	}
	if _, ok := r.Template.Resources[name]; ok {
		return nil, fmt.Errorf("samtemplate: Ref %s: the resource has no physical value here", name)
	}
	return nil, fmt.Errorf("samtemplate: Ref %s: no such parameter or resource", name)
}

func (r *Resolver) getAtt(id, attr string) (string, error) {
	ph, ok := r.Resources[id]
	if !ok {
		if _, inTemplate := r.Template.Resources[id]; inTemplate {
			return "", fmt.Errorf("samtemplate: GetAtt %s.%s: the resource has no physical value here", id, attr)
		}
		return "", fmt.Errorf("samtemplate: GetAtt %s.%s: no such resource", id, attr)
	}
	v, ok := ph.Attrs[attr]
	if !ok {
		return "", fmt.Errorf("samtemplate: GetAtt %s.%s: unknown attribute", id, attr)
	}
	return v, nil
}

func (r *Resolver) eval(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			ev, err := r.eval(e)
			if err != nil {
				return nil, err
			}
			if _, skip := ev.(noValue); !skip {
				out = append(out, ev)
			}
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					return r.fn(k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			ev, err := r.eval(e)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if _, skip := ev.(noValue); !skip {
				out[k] = ev
			}
		}
		return out, nil
	}
	return v, nil
}

func (r *Resolver) fn(name string, arg any) (any, error) {
	switch name {
	case "Ref":
		s, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("samtemplate: Ref takes a name, got %v", arg)
		}
		return r.ref(s)
	case "Condition":
		s, ok := arg.(string)
		if !ok {
			return nil, fmt.Errorf("samtemplate: Condition takes a name, got %v", arg)
		}
		return r.condition(s)
	case "Fn::GetAtt":
		l, err := r.argList(name, arg, 2)
		if err != nil {
			return nil, err
		}
		id, _ := l[0].(string)
		attr, err := scalarString(l[1])
		if err != nil || id == "" {
			return nil, fmt.Errorf("samtemplate: Fn::GetAtt: bad arguments %v", arg)
		}
		return r.getAtt(id, attr)
	case "Fn::Sub":
		return r.sub(arg)
	case "Fn::Join":
		l, err := r.argList(name, arg, 2)
		if err != nil {
			return nil, err
		}
		delim, err := scalarString(l[0])
		if err != nil {
			return nil, fmt.Errorf("samtemplate: Fn::Join delimiter: %w", err)
		}
		items, ok := l[1].([]any)
		if !ok {
			return nil, fmt.Errorf("samtemplate: Fn::Join: %v is not a list", l[1])
		}
		parts := make([]string, len(items))
		for i, it := range items {
			if parts[i], err = scalarString(it); err != nil {
				return nil, fmt.Errorf("samtemplate: Fn::Join: %w", err)
			}
		}
		return strings.Join(parts, delim), nil
	case "Fn::Select":
		l, err := r.argList(name, arg, 2)
		if err != nil {
			return nil, err
		}
		idx, ok := asInt(l[0])
		if !ok {
			if s, isStr := l[0].(string); isStr {
				idx, err = strconv.Atoi(s)
				ok = err == nil
			}
		}
		items, isList := l[1].([]any)
		if !ok || !isList || idx < 0 || idx >= len(items) {
			return nil, fmt.Errorf("samtemplate: Fn::Select: bad arguments %v", l)
		}
		return items[idx], nil
	case "Fn::Split":
		l, err := r.argList(name, arg, 2)
		if err != nil {
			return nil, err
		}
		delim, err1 := scalarString(l[0])
		s, err2 := scalarString(l[1])
		if err1 != nil || err2 != nil || delim == "" {
			return nil, fmt.Errorf("samtemplate: Fn::Split: bad arguments %v", l)
		}
		parts := strings.Split(s, delim)
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case "Fn::If":
		l, ok := arg.([]any)
		if !ok || len(l) != 3 {
			return nil, fmt.Errorf("samtemplate: Fn::If takes [condition, then, else], got %v", arg)
		}
		cond, ok := l[0].(string)
		if !ok {
			return nil, fmt.Errorf("samtemplate: Fn::If: condition name %v", l[0])
		}
		b, err := r.condition(cond)
		if err != nil {
			return nil, err
		}
		if b {
			return r.eval(l[1])
		}
		return r.eval(l[2])
	case "Fn::Equals":
		l, err := r.argList(name, arg, 2)
		if err != nil {
			return nil, err
		}
		a, err1 := scalarString(l[0])
		b, err2 := scalarString(l[1])
		if err1 != nil || err2 != nil {
			return fmt.Sprint(l[0]) == fmt.Sprint(l[1]), nil
		}
		return a == b, nil
	case "Fn::And", "Fn::Or":
		l, err := r.argList(name, arg, -1)
		if err != nil {
			return nil, err
		}
		res := name == "Fn::And"
		for _, e := range l {
			b, ok := e.(bool)
			if !ok {
				return nil, fmt.Errorf("samtemplate: %s: %v is not a condition", name, e)
			}
			if name == "Fn::And" {
				res = res && b
			} else {
				res = res || b
			}
		}
		return res, nil
	case "Fn::Not":
		l, err := r.argList(name, arg, 1)
		if err != nil {
			return nil, err
		}
		b, ok := l[0].(bool)
		if !ok {
			return nil, fmt.Errorf("samtemplate: Fn::Not: %v is not a condition", l[0])
		}
		return !b, nil
	case "Fn::FindInMap":
		l, err := r.argList(name, arg, 3)
		if err != nil {
			return nil, err
		}
		var cur any = r.Template.Mappings
		for _, k := range l {
			ks, err := scalarString(k)
			if err != nil {
				return nil, fmt.Errorf("samtemplate: Fn::FindInMap: %w", err)
			}
			m, ok := cur.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("samtemplate: Fn::FindInMap %v: not found", l)
			}
			if cur, ok = m[ks]; !ok {
				return nil, fmt.Errorf("samtemplate: Fn::FindInMap %v: %s not found", l, ks)
			}
		}
		return r.eval(cur)
	case "Fn::Base64":
		x, err := r.eval(arg)
		if err != nil {
			return nil, err
		}
		s, err := scalarString(x)
		if err != nil {
			return nil, fmt.Errorf("samtemplate: Fn::Base64: %w", err)
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	}
	return nil, fmt.Errorf("samtemplate: %s is not supported locally", name)
}

// argList evaluates arg and checks it is a list of n elements (n < 0: any).
func (r *Resolver) argList(name string, arg any, n int) ([]any, error) {
	x, err := r.eval(arg)
	if err != nil {
		return nil, err
	}
	l, ok := x.([]any)
	if !ok || (n >= 0 && len(l) != n) {
		return nil, fmt.Errorf("samtemplate: %s: want a list of %d, got %v", name, n, arg)
	}
	return l, nil
}

func (r *Resolver) condition(name string) (bool, error) {
	c, ok := r.Template.Conditions[name]
	if !ok {
		return false, fmt.Errorf("samtemplate: no condition %s", name)
	}
	v, err := r.eval(c)
	if err != nil {
		return false, fmt.Errorf("samtemplate: condition %s: %w", name, err)
	}
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("samtemplate: condition %s is %v, not a boolean", name, v)
	}
	return b, nil
}

// sub evaluates Fn::Sub in its string and [string, {vars}] forms.
func (r *Resolver) sub(arg any) (any, error) {
	var (
		text string
		vars = map[string]string{}
	)
	switch x := arg.(type) {
	case string:
		text = x
	case []any:
		if len(x) != 2 {
			return nil, fmt.Errorf("samtemplate: Fn::Sub takes [string, map], got %v", arg)
		}
		s, ok := x[0].(string)
		m, mok := x[1].(map[string]any)
		if !ok || !mok {
			return nil, fmt.Errorf("samtemplate: Fn::Sub takes [string, map], got %v", arg)
		}
		text = s
		for k, v := range m {
			vs, err := r.String(v)
			if err != nil {
				return nil, fmt.Errorf("samtemplate: Fn::Sub variable %s: %w", k, err)
			}
			vars[k] = vs
		}
	default:
		return nil, fmt.Errorf("samtemplate: Fn::Sub takes a string or [string, map], got %v", arg)
	}
	var b strings.Builder
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			b.WriteString(text)
			break
		}
		b.WriteString(text[:i])
		end := strings.Index(text[i:], "}")
		if end < 0 {
			return nil, fmt.Errorf("samtemplate: Fn::Sub: unclosed ${ in %q", text)
		}
		name := text[i+2 : i+end]
		text = text[i+end+1:]
		if strings.HasPrefix(name, "!") { // ${!Literal} -> ${Literal}
			b.WriteString("${" + name[1:] + "}")
			continue
		}
		val, err := r.subVar(strings.TrimSpace(name), vars)
		if err != nil {
			return nil, err
		}
		b.WriteString(val)
	}
	return b.String(), nil
}

func (r *Resolver) subVar(name string, vars map[string]string) (string, error) {
	if v, ok := vars[name]; ok {
		return v, nil
	}
	if id, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
		return r.getAtt(id, attr)
	}
	v, err := r.ref(name)
	if err != nil {
		return "", fmt.Errorf("samtemplate: Fn::Sub ${%s}: %w", name, err)
	}
	return scalarString(v)
}

func scalarString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case int:
		return strconv.Itoa(x), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case bool:
		return strconv.FormatBool(x), nil
	case nil, noValue:
		return "", nil
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			s, err := scalarString(e)
			if err != nil {
				return "", err
			}
			parts[i] = s
		}
		return strings.Join(parts, ","), nil
	}
	return "", fmt.Errorf("samtemplate: %v (%T) is not a scalar", v, v)
}
