package nowcertssandbox

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// kind is an OData (Edm) type of an entity field.
type kind int

const (
	kString kind = iota
	kGUID
	kTime
	kBool
)

func (k kind) String() string {
	return [...]string{"Edm.String", "Edm.Guid", "Edm.DateTimeOffset", "Edm.Boolean"}[k]
}

// schema maps an entity's field names (as NowCerts spells them) to their types.
type schema map[string]kind

// lookup finds a field case-insensitively and returns its canonical name.
func (s schema) lookup(name string) (string, kind, bool) {
	if k, ok := s[name]; ok {
		return name, k, true
	}
	for n, k := range s {
		if strings.EqualFold(n, name) {
			return n, k, true
		}
	}
	return "", 0, false
}

var (
	certificateSchema = schema{"databaseId": kGUID, "name": kString, "insuredDatabaseId": kGUID, "insuredEmail": kString, "createDate": kTime}
	holderSchema      = schema{"databaseId": kGUID, "name": kString, "addressLine1": kString, "addressLine2": kString, "city": kString,
		"state": kString, "zipCode": kString, "phone": kString, "fax": kString, "eMail": kString, "createDate": kTime, "changeDate": kTime}
	historicalSchema = schema{"databaseId": kGUID, "name": kString, "eMail": kString, "fax": kString, "certificateId": kGUID,
		"certificateName": kString, "insuredDatabaseId": kGUID, "insuredEmail": kString, "insuredCommercialName": kString,
		"createDate": kTime, "changeDate": kTime}
)

// fields is an entity row as field name → value (string, time.Time, bool).
type fields map[string]any

func (c Certificate) fields() fields {
	return fields{"databaseId": c.DatabaseID, "name": c.Name, "insuredDatabaseId": c.InsuredDatabaseID,
		"insuredEmail": c.InsuredEmail, "createDate": c.CreateDate}
}

func (h Holder) fields() fields {
	return fields{"databaseId": h.DatabaseID, "name": h.Name, "addressLine1": h.AddressLine1, "addressLine2": h.AddressLine2,
		"city": h.City, "state": h.State, "zipCode": h.ZipCode, "phone": h.Phone, "fax": h.Fax, "eMail": h.EMail,
		"createDate": h.CreateDate, "changeDate": h.ChangeDate}
}

func (h HistoricalHolder) fields() fields {
	return fields{"databaseId": h.DatabaseID, "name": h.Name, "eMail": h.EMail, "fax": h.Fax, "certificateId": h.CertificateID,
		"certificateName": h.CertificateName, "insuredDatabaseId": h.InsuredDatabaseID, "insuredEmail": h.InsuredEmail,
		"insuredCommercialName": h.InsuredCommercialName, "createDate": h.CreateDate, "changeDate": h.ChangeDate}
}

// predicate tests a row.
type predicate func(fields) bool

// ---------------------------------------------------------------- lexer

type tokKind int

const (
	tEOF tokKind = iota
	tWord
	tString
	tLParen
	tRParen
	tComma
)

type token struct {
	kind tokKind
	text string
}

func lex(s string) ([]token, error) {
	var out []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '(':
			out = append(out, token{tLParen, "("})
			i++
		case c == ')':
			out = append(out, token{tRParen, ")"})
			i++
		case c == ',':
			out = append(out, token{tComma, ","})
			i++
		case c == '\'':
			var b strings.Builder
			j := i + 1
			for {
				if j >= len(s) {
					return nil, fmt.Errorf("unterminated string literal at position %d", i)
				}
				if s[j] == '\'' {
					if j+1 < len(s) && s[j+1] == '\'' {
						b.WriteByte('\'')
						j += 2
						continue
					}
					break
				}
				b.WriteByte(s[j])
				j++
			}
			out = append(out, token{tString, b.String()})
			i = j + 1
		case isWordByte(c):
			j := i
			for j < len(s) && isWordByte(s[j]) {
				j++
			}
			out = append(out, token{tWord, s[i:j]})
			i = j
		default:
			return nil, fmt.Errorf("syntax error at position %d: unexpected %q", i, c)
		}
	}
	return append(out, token{kind: tEOF}), nil
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-' || c == '+'
}

// ---------------------------------------------------------------- parser

var guidLit = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

type parser struct {
	toks []token
	pos  int
	sch  schema
}

// parseFilter compiles an OData $filter over sch: comparisons (eq ne gt ge lt
// le) of a field with a literal, and/or/not, parentheses, and contains /
// startswith / endswith on strings. GUIDs are unquoted literals; a quoted
// string compared with a GUID field is a type error, as in OData.
func parseFilter(s string, sch schema) (predicate, error) {
	toks, err := lex(s)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, sch: sch}
	pred, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.peek().kind != tEOF {
		return nil, fmt.Errorf("syntax error: unexpected %q", p.peek().text)
	}
	return pred, nil
}

func (p *parser) peek() token { return p.toks[p.pos] }
func (p *parser) next() token { t := p.toks[p.pos]; p.pos++; return t }
func (p *parser) keyword(k string) bool {
	t := p.peek()
	if t.kind == tWord && strings.EqualFold(t.text, k) {
		p.pos++
		return true
	}
	return false
}

func (p *parser) or() (predicate, error) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.keyword("or") {
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		a, b := l, r
		l = func(f fields) bool { return a(f) || b(f) }
	}
	return l, nil
}

func (p *parser) and() (predicate, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.keyword("and") {
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		a, b := l, r
		l = func(f fields) bool { return a(f) && b(f) }
	}
	return l, nil
}

func (p *parser) unary() (predicate, error) {
	if p.keyword("not") {
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(f fields) bool { return !x(f) }, nil
	}
	if p.peek().kind == tLParen {
		p.next()
		x, err := p.or()
		if err != nil {
			return nil, err
		}
		if p.next().kind != tRParen {
			return nil, fmt.Errorf("syntax error: missing ')'")
		}
		return x, nil
	}
	t := p.next()
	if t.kind != tWord {
		return nil, fmt.Errorf("syntax error: expected a property, found %q", t.text)
	}
	if p.peek().kind == tLParen {
		return p.function(t.text)
	}
	name, k, ok := p.sch.lookup(t.text)
	if !ok {
		return nil, fmt.Errorf("could not find a property named '%s'", t.text)
	}
	op := p.next()
	if op.kind != tWord {
		return nil, fmt.Errorf("syntax error: expected an operator after %s", name)
	}
	lit := p.next()
	return compare(name, k, strings.ToLower(op.text), lit)
}

// function parses contains/startswith/endswith(field,'text').
func (p *parser) function(fn string) (predicate, error) {
	p.next() // (
	ft := p.next()
	name, k, ok := p.sch.lookup(ft.text)
	if ft.kind != tWord || !ok {
		return nil, fmt.Errorf("could not find a property named '%s'", ft.text)
	}
	if k != kString {
		return nil, fmt.Errorf("%s needs an Edm.String property; %s is %s", fn, name, k)
	}
	if p.next().kind != tComma {
		return nil, fmt.Errorf("syntax error in %s: expected ','", fn)
	}
	arg := p.next()
	if arg.kind != tString {
		return nil, fmt.Errorf("%s needs a string literal", fn)
	}
	if p.next().kind != tRParen {
		return nil, fmt.Errorf("syntax error in %s: missing ')'", fn)
	}
	var test func(s, sub string) bool
	switch strings.ToLower(fn) {
	case "contains":
		test = strings.Contains
	case "startswith":
		test = strings.HasPrefix
	case "endswith":
		test = strings.HasSuffix
	default:
		return nil, fmt.Errorf("unknown function '%s'", fn)
	}
	want := strings.ToLower(arg.text)
	return func(f fields) bool { s, _ := f[name].(string); return test(strings.ToLower(s), want) }, nil
}

func compare(name string, k kind, op string, lit token) (predicate, error) {
	if !slices.Contains([]string{"eq", "ne", "gt", "ge", "lt", "le"}, op) {
		return nil, fmt.Errorf("unknown operator '%s'", op)
	}
	isNull := lit.kind == tWord && strings.EqualFold(lit.text, "null")
	var cmp func(fields) int // ordering of the field's value against the literal
	switch {
	case isNull:
		cmp = func(f fields) int {
			switch v := f[name].(type) {
			case string:
				if v == "" {
					return 0
				}
			case time.Time:
				if v.IsZero() {
					return 0
				}
			}
			return 1
		}
	case k == kGUID:
		if lit.kind == tString {
			return nil, fmt.Errorf("a binary operator with incompatible types was detected: found operand types 'Edm.Guid' and 'Edm.String' for operator '%s' (GUIDs are unquoted)", op)
		}
		if lit.kind != tWord || !guidLit.MatchString(lit.text) {
			return nil, fmt.Errorf("'%s' is not a valid Edm.Guid literal", lit.text)
		}
		want := strings.ToLower(lit.text)
		cmp = func(f fields) int { s, _ := f[name].(string); return strings.Compare(strings.ToLower(s), want) }
	case k == kString:
		if lit.kind != tString {
			return nil, fmt.Errorf("a binary operator with incompatible types was detected: property %s is Edm.String, literal %q is not a quoted string", name, lit.text)
		}
		want := strings.ToLower(lit.text)
		cmp = func(f fields) int { s, _ := f[name].(string); return strings.Compare(strings.ToLower(s), want) }
	case k == kTime:
		t, err := time.Parse(time.RFC3339Nano, lit.text)
		if lit.kind != tWord || err != nil {
			return nil, fmt.Errorf("'%s' is not a valid Edm.DateTimeOffset literal (unquoted, with an offset)", lit.text)
		}
		cmp = func(f fields) int { v, _ := f[name].(time.Time); return v.Compare(t) }
	case k == kBool:
		b, err := strconv.ParseBool(lit.text)
		if err != nil {
			return nil, fmt.Errorf("'%s' is not a valid Edm.Boolean literal", lit.text)
		}
		cmp = func(f fields) int {
			v, _ := f[name].(bool)
			if v == b {
				return 0
			}
			return 1
		}
	}
	if isNull && op != "eq" && op != "ne" {
		return nil, fmt.Errorf("operator '%s' cannot compare with null", op)
	}
	return func(f fields) bool {
		c := cmp(f)
		switch op {
		case "eq":
			return c == 0
		case "ne":
			return c != 0
		case "gt":
			return c > 0
		case "ge":
			return c >= 0
		case "lt":
			return c < 0
		default:
			return c <= 0
		}
	}, nil
}

// orderKey is one $orderby term.
type orderKey struct {
	name string
	desc bool
}

func parseOrderBy(s string, sch schema) ([]orderKey, error) {
	var out []orderKey
	for part := range strings.SplitSeq(s, ",") {
		w := strings.Fields(part)
		if len(w) == 0 || len(w) > 2 {
			return nil, fmt.Errorf("$orderby: cannot read %q", part)
		}
		name, _, ok := sch.lookup(w[0])
		if !ok {
			return nil, fmt.Errorf("$orderby: could not find a property named '%s'", w[0])
		}
		k := orderKey{name: name}
		if len(w) == 2 {
			switch strings.ToLower(w[1]) {
			case "asc":
			case "desc":
				k.desc = true
			default:
				return nil, fmt.Errorf("$orderby: expected asc or desc, found %q", w[1])
			}
		}
		out = append(out, k)
	}
	return out, nil
}

func compareFields(a, b fields, keys []orderKey) int {
	for _, k := range keys {
		var c int
		switch x := a[k.name].(type) {
		case string:
			y, _ := b[k.name].(string)
			c = strings.Compare(strings.ToLower(x), strings.ToLower(y))
		case time.Time:
			y, _ := b[k.name].(time.Time)
			c = x.Compare(y)
		}
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
