package sending

import (
	"slices"
	"strings"
	"testing"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/nowcerts"
	"github.com/coiflow/coiflow/internal/store"
)

// TestEvaluateEveryCombination runs every combination of the six rule toggles
// and the facts they look at (5 flags, reissue, 3 holder states) — 12288 cases —
// and checks each reason is present exactly when its rule is on and its
// condition holds, in the documented order.
func TestEvaluateEveryCombination(t *testing.T) {
	type rule struct {
		reason string
		on     func(store.Rules) bool
		holds  func(Facts) bool
	}
	// The documented order of reasons; nil "on" means the rule cannot be disabled.
	rules := []rule{
		{ReasonAdditionalInsured, func(r store.Rules) bool { return r.HoldAdditionalInsured }, func(f Facts) bool { return f.Certificate.AdditionalInsured }},
		{ReasonWaiver, func(r store.Rules) bool { return r.HoldWaiverOfSubrogation }, func(f Facts) bool { return f.Certificate.WaiverOfSubrogation }},
		{ReasonSpecialWording, func(r store.Rules) bool { return r.HoldSpecialWording }, func(f Facts) bool { return f.Certificate.SpecialWording }},
		{ReasonPendingApproval, func(r store.Rules) bool { return r.HoldPendingApproval }, func(f Facts) bool { return f.Certificate.PendingApproval }},
		{ReasonPolicyCancelled, func(r store.Rules) bool { return r.HoldCancelledPolicy }, func(f Facts) bool { return f.PolicyCancelled }},
		{ReasonNoHolder, nil, func(f Facts) bool { return !f.HasHolder }},
		{ReasonNoRecipient, nil, func(f Facts) bool { return f.HasHolder && !f.HasRecipient }},
		{ReasonReissue, nil, func(f Facts) bool { return f.HeldReissue }},
		{ReasonApproveAll, func(r store.Rules) bool { return r.ApproveAll }, func(Facts) bool { return true }},
	}
	cases := 0
	for rbits := range 1 << 6 {
		r := store.Rules{
			HoldAdditionalInsured: rbits&1 != 0, HoldWaiverOfSubrogation: rbits&2 != 0, HoldSpecialWording: rbits&4 != 0,
			HoldPendingApproval: rbits&8 != 0, HoldCancelledPolicy: rbits&16 != 0, ApproveAll: rbits&32 != 0,
		}
		for fbits := range 1 << 6 {
			for holder := range 3 { // 0 no holder, 1 holder without recipient, 2 holder with recipient
				f := Facts{
					Certificate: event.Certificate{
						AdditionalInsured: fbits&1 != 0, WaiverOfSubrogation: fbits&2 != 0, SpecialWording: fbits&4 != 0, PendingApproval: fbits&8 != 0,
					},
					PolicyCancelled: fbits&16 != 0, HeldReissue: fbits&32 != 0,
					HasHolder: holder > 0, HasRecipient: holder == 2,
				}
				var want []string
				for _, ru := range rules {
					if (ru.on == nil || ru.on(r)) && ru.holds(f) {
						want = append(want, ru.reason)
					}
				}
				got := Evaluate(r, f)
				if !slices.Equal(got, want) {
					t.Fatalf("rules %+v facts %+v: got %v, want %v", r, f, got, want)
				}
				cases++
			}
		}
	}
	if cases != 64*64*3 {
		t.Fatalf("%d cases", cases)
	}
}

func TestEvaluateDefaults(t *testing.T) {
	def := store.DefaultSettings("a").Rules
	clean := Facts{HasHolder: true, HasRecipient: true}
	if got := Evaluate(def, clean); len(got) != 0 {
		t.Fatalf("a plain certificate is held by default: %v", got)
	}
	all := Facts{HasHolder: true, HasRecipient: true, PolicyCancelled: true, Certificate: event.Certificate{
		AdditionalInsured: true, WaiverOfSubrogation: true, SpecialWording: true, PendingApproval: true}}
	want := []string{ReasonAdditionalInsured, ReasonWaiver, ReasonSpecialWording, ReasonPendingApproval, ReasonPolicyCancelled}
	if got := Evaluate(def, all); !slices.Equal(got, want) {
		t.Fatalf("every reason: got %v", got)
	}
	// Disabling every rule still holds what cannot be sent.
	if got := Evaluate(store.Rules{}, Facts{}); !slices.Equal(got, []string{ReasonNoHolder}) {
		t.Fatalf("no holder: %v", got)
	}
}

func TestRecipientsFromEvent(t *testing.T) {
	rs := recipientsFromEvent([]event.Holder{
		{ID: "0C9D8E7F-6A5B-4C3D-9E2F-1A0B9C8D7E6F", Name: "A", Email: "a@x.example; b@y.example, A@X.example"},
		{ID: "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f", Name: "A again"}, // same holder, other case
		{Name: "Fax only", Fax: "+1 (309) 555-0198"},
		{Name: "Nobody"},
		{ID: "cowbell-h-1", Email: "c@z.example"},
		{Email: "not-an-email"},
	})
	if len(rs) != 5 {
		t.Fatalf("recipients = %+v", rs)
	}
	if rs[0].Key != "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f" || rs[0].NowCertsID != "0C9D8E7F-6A5B-4C3D-9E2F-1A0B9C8D7E6F" ||
		!slices.Equal(rs[0].Emails, []string{"a@x.example", "b@y.example"}) {
		t.Fatalf("first = %+v", rs[0])
	}
	if rs[1].Key != "fax:+13095550198" || rs[1].NowCertsID != "" || channelOf(rs[1].Emails, rs[1].Fax) != "fax" {
		t.Fatalf("fax = %+v", rs[1])
	}
	if rs[2].Key != "name:nobody" || rs[2].hasRecipient() {
		t.Fatalf("nobody = %+v", rs[2])
	}
	if rs[3].Key != "cowbell-h-1" || rs[3].NowCertsID != "" {
		t.Fatalf("non-GUID holder id must not go to NowCerts: %+v", rs[3])
	}
	if rs[4].Key != "" || rs[4].hasRecipient() {
		t.Fatalf("invalid email = %+v", rs[4])
	}
	if channelOf([]string{"a@b.c"}, "1") != "email+fax" || channelOf(nil, "") != "" {
		t.Fatal("channel")
	}
}

func TestRecipientsFromHistoryAndMatching(t *testing.T) {
	rows := []nowcerts.HistoricalHolder{
		{DatabaseID: "H1", Email: "coi@north.example", CertificateID: "C"},
		{DatabaseID: "H2", Email: "COI@north.example", CertificateID: "C"},
		{DatabaseID: "H3", Fax: "(309) 555-0198", CertificateID: "C"},
		{DatabaseID: "H4", CertificateID: "C"},
	}
	rs := recipientsFromHistory(rows)
	if len(rs) != 3 || !slices.Equal(rs[0].HistoricalIDs, []string{"H1", "H2"}) || rs[0].Key != syntheticKey([]string{"coi@north.example"}, "") ||
		strings.Contains(rs[0].Key, "north") ||
		rs[1].Key != "fax:3095550198" || rs[2].Key != "hist:h4" || rs[2].hasRecipient() {
		t.Fatalf("recipients = %+v", rs)
	}
	if got := matchHistorical(rows, "", []string{"Coi@North.example"}, ""); !slices.Equal(got, []string{"H1", "H2"}) {
		t.Fatalf("match by email = %v", got)
	}
	if got := matchHistorical(rows, "h4", nil, "309-555-0198"); !slices.Equal(got, []string{"H3", "H4"}) {
		t.Fatalf("match by id and fax = %v", got)
	}
	if got := matchHistorical(rows, "", []string{"other@x.example"}, ""); len(got) != 0 {
		t.Fatalf("no match = %v", got)
	}
}

func TestSendKey(t *testing.T) {
	c := event.Certificate{ID: "ABC", Name: "ACORD 25", Description: "Project 12"}
	r1 := revisionOf(c)
	if !strings.HasPrefix(r1, "sha256:") {
		t.Fatalf("content-hash revision %q", r1)
	}
	c2 := c
	c2.PendingApproval = true // approval state is not content
	c2.ID = "abc"
	if revisionOf(c2) != r1 {
		t.Fatal("revision depends on approval state or id case")
	}
	c3 := c
	c3.Description = "Project 13"
	if revisionOf(c3) == r1 {
		t.Fatal("revision ignores the description")
	}
	c.Revision = " 2026-11-21T10:00:00-05:00 "
	if revisionOf(c) != "2026-11-21T10:00:00-05:00" {
		t.Fatalf("explicit revision %q", revisionOf(c))
	}
	if SendID("ABC", "H", "r") != SendID("abc", "h", "r") || SendID("abc", "h", "r") == SendID("abc", "h", "r2") ||
		SendID("abc", "h1", "r") == SendID("abc", "h2", "r") || !strings.HasPrefix(HoldID("a", "b", "c"), "hld_") {
		t.Fatal("send ids")
	}
}

func TestRequestTemplates(t *testing.T) {
	s := New(Deps{})
	set := store.DefaultSettings("a")
	set.EmailSubject = "COI for {insured} / {policy}"
	set.EmailBody = "Dear {holder}: certificate {certificate}."
	rec := store.Send{CertificateID: "3f2b6c1e-8a4d-4e0f-9b1a-2c5d7e8f9a01", InsuredID: "7b1e4a52-3c9d-4f60-a8e2-51d0c3b9e7a4",
		InsuredName: "Acme", HolderName: "Northwind", PolicyNumber: "P-9", Source: "nowcerts"}
	req := s.requestFor(set, rec, recipient{NowCertsID: "H", Emails: []string{"a@b.example"}})
	if req.EmailSubject != "COI for Acme / P-9" || req.EmailBody != "Dear Northwind: certificate 3f2b6c1e-8a4d-4e0f-9b1a-2c5d7e8f9a01." ||
		req.InsuredID != rec.InsuredID || !slices.Equal(req.HolderIDs, []string{"H"}) {
		t.Fatalf("request = %+v", req)
	}
	// Fax only: no email texts. Cowbell insured ids never go to NowCerts.
	rec.Source = "cowbell"
	req = s.requestFor(set, rec, recipient{Fax: "1"})
	if req.EmailSubject != "" || req.InsuredID != "" || req.HolderIDs != nil {
		t.Fatalf("fax request = %+v", req)
	}
}
