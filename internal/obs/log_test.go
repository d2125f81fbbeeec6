package obs

import "testing"

func TestMaskEmail(t *testing.T) {
	for in, want := range map[string]string{
		"jane.doe@acme.com":               "j***@a***.com",
		"coi@northwind-pm.example, a@b.c": "c***@n***.example, a***@b***.c",
		"not an address":                  "***",
		"":                                "",
	} {
		if got := MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskEmails(t *testing.T) {
	for in, want := range map[string]string{
		"send to jane.doe@acme.com failed":  "send to j***@a***.com failed",
		"a@b.co, c@d.org":                   "a***@b***.co, c***@d***.org",
		"<x@y.io>":                          "<x***@y***.io>",
		"no email here":                     "no email here",
		`holder "coi@acme-pm.example" gone`: `holder "c***@a***.example" gone`,
	} {
		if got := MaskEmails(in); got != want {
			t.Errorf("MaskEmails(%q) = %q, want %q", in, got, want)
		}
	}
}
