package crmsync_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/coiflow/coiflow/internal/crm"
	"github.com/coiflow/coiflow/internal/crm/hubspot"
	"github.com/coiflow/coiflow/internal/crm/hubspot/hubspotspec"
	"github.com/coiflow/coiflow/internal/crmsync"
	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/jobs"
	"github.com/coiflow/coiflow/internal/local/testenv"
	"github.com/coiflow/coiflow/internal/obs"
	"github.com/coiflow/coiflow/internal/sandbox/crmsandbox"
	"github.com/coiflow/coiflow/internal/store"
	"github.com/coiflow/coiflow/internal/testsupport"

	"net/http/httptest"
)

func TestMain(m *testing.M) { os.Exit(testenv.Run(m)) }

var (
	specOnce sync.Once
	spec     *hubspotspec.Validator
	specErr  error
)

// fixture: the worker over a real table (DynamoDB Local) and the HubSpot
// adapter talking to the CRM sandbox, every exchange validated against
// HubSpot's OpenAPI documents.
type fixture struct {
	t       *testing.T
	sb      *crmsandbox.Sandbox
	st      *store.Store
	clk     *testsupport.Clock
	hs      *hubspot.Client
	metrics *bytes.Buffer
	logs    *bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	specOnce.Do(func() {
		dir, err := hubspotspec.Dir()
		if err == nil {
			spec, err = hubspotspec.Load(dir)
		}
		specErr = err
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	env := testenv.Get(t)
	clk := testsupport.NewClock(time.Date(2026, 11, 21, 14, 2, 0, 0, time.UTC))
	sb := crmsandbox.New(crmsandbox.Options{Token: "pat-test", RateMax: 100000})
	rec := spec.Wrap(sb, true)
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	hs, err := hubspot.New(hubspot.Config{BaseURL: srv.URL, Credentials: crm.StaticCredentials(crm.Credentials{HubSpotToken: "pat-test"}), RateMax: 100000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, err := range rec.Errors() {
			t.Errorf("HubSpot spec violation: %v", err)
		}
	})
	return &fixture{t: t, sb: sb, st: store.New(env.DynamoDB(), env.NewTable(t)).WithClock(clk.Now), clk: clk, hs: hs,
		metrics: &bytes.Buffer{}, logs: &bytes.Buffer{}}
}

func (f *fixture) worker(st crmsync.Store, c crm.CRM) *crmsync.Worker {
	f.t.Helper()
	if st == nil {
		st = f.st
	}
	if c == nil {
		c = f.hs
	}
	w, err := crmsync.New(crmsync.Config{CRM: c, Kind: "hubspot", Store: st, Now: f.clk.Now,
		Logger: obs.NewLogger(f.logs, "debug"), Metrics: obs.NewMetrics(f.metrics)})
	if err != nil {
		f.t.Fatal(err)
	}
	return w
}

// metric returns how many times a metric was emitted.
func (f *fixture) metric(name string) int {
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(f.metrics.Bytes()))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m[name] != nil {
			n++
		}
	}
	return n
}

func (f *fixture) upserts() int {
	n := 0
	for _, r := range f.sb.Requests() {
		if strings.HasSuffix(r.Path, "/batch/upsert") {
			n++
		}
	}
	return n
}

func (f *fixture) find(ot, ext string) crmsandbox.Object {
	f.t.Helper()
	for _, o := range f.sb.Objects(ot) {
		if o.Properties["coi_external_id"] == ext {
			return o
		}
	}
	f.t.Fatalf("no %s with external id %s in the sandbox", ot, ext)
	return crmsandbox.Object{}
}

// sqsFile reads an events/crm-worker file.
func sqsFile(t *testing.T, name string) events.SQSEvent {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "events", "crm-worker", name))
	if err != nil {
		t.Fatal(err)
	}
	var ev events.SQSEvent
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func job(t *testing.T, name string) jobs.Job {
	t.Helper()
	j, err := jobs.Unmarshal(sqsFile(t, name).Records[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

const (
	account = "cowbell:877e9ee2-8ee0-4fe3-9658-b9cae24303f7"
	insured = "nowcerts:3f2e1d0c-b9a8-4765-8321-0fedcba98765"
	holder  = "nowcerts:8d0f5c3e-2b1a-4c6d-9e8f-0a1b2c3d4e5f"
)

func TestCowbellQuoteStatusWritesCompanyAndContacts(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	resp, err := w.Handle(context.Background(), sqsFile(t, "cowbell-quote-status.json"))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%+v %v\n%s", resp, err, f.logs)
	}
	co := f.find("companies", account)
	if co.Properties["name"] != "Red Rock Test Company" || co.Properties["coi_quote_number"] != "QCB-250-QQONJSXI" || co.Properties["coi_quote_status"] != "READY" || co.Properties["coi_source"] != "cowbell" {
		t.Fatalf("company %+v", co.Properties)
	}
	cust := f.find("contacts", account+":customer")
	agent := f.find("contacts", crmsync.AgentExternalID("Sam.Rivera@quotefirst.example"))
	if cust.Properties["firstname"] != "Pat" || cust.Properties["email"] != "pat.lee@redrock.example" || cust.Properties["coi_role"] != "customer" {
		t.Fatalf("customer %+v", cust.Properties)
	}
	if agent.Properties["lastname"] != "Rivera" || agent.Properties["coi_role"] != "agent" {
		t.Fatalf("agent %+v", agent.Properties)
	}
	for _, c := range []crmsandbox.Object{cust, agent} {
		if got := c.Associations["companies"]; len(got) != 1 || got[0] != co.ID {
			t.Fatalf("contact %s associations %v", c.ID, c.Associations)
		}
	}
	if n := f.metric(obs.MetricCRMUpserts); n != 3 {
		t.Fatalf("CrmUpserts %d, want 3", n)
	}

	// Policy then account status: numbers and statuses land on the same company.
	for _, name := range []string{"cowbell-policy-status.json", "cowbell-account-status.json"} {
		if resp, err := w.Handle(context.Background(), sqsFile(t, name)); err != nil || len(resp.BatchItemFailures) != 0 {
			t.Fatalf("%s: %+v %v", name, resp, err)
		}
	}
	co = f.find("companies", account)
	want := map[string]string{"coi_quote_number": "QCB-250-QQONJSXI", "coi_policy_number": "PLM-QGTGSXI", "coi_policy_status": "ISSUED",
		"coi_policy_effective_date": "2026-12-01", "coi_product_type": "P100", "coi_account_status": "ACTIVE POLICY", "coi_status": "active"}
	for k, v := range want {
		if co.Properties[k] != v {
			t.Errorf("%s = %q, want %q", k, co.Properties[k], v)
		}
	}
	if len(f.sb.Objects("companies")) != 1 || len(f.sb.Objects("contacts")) != 2 {
		t.Fatalf("duplicates: %d companies, %d contacts", len(f.sb.Objects("companies")), len(f.sb.Objects("contacts")))
	}
}

func TestSameEventTwiceIsOneCRMWrite(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	j := job(t, "nowcerts-holder-insert.json")
	if err := w.Process(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	n, reqs := f.upserts(), len(f.sb.Requests())
	if n != 2 { // the insured company, the holder contact
		t.Fatalf("%d upserts, want 2", n)
	}
	if err := w.Process(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	if got := len(f.sb.Requests()); got != reqs {
		t.Fatalf("the duplicate made %d CRM requests", got-reqs)
	}
	if f.metric(obs.MetricCRMSkipped) != 2 {
		t.Fatalf("CrmSkippedUnchanged %d, want 2", f.metric(obs.MetricCRMSkipped))
	}

	// Inside one SQS batch too: insert, the same insert, update, timeline.
	f2 := newFixture(t)
	w2 := f2.worker(nil, nil)
	resp, err := w2.Handle(context.Background(), sqsFile(t, "batch-mixed.json"))
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("%+v %v\n%s", resp, err, f2.logs)
	}
	if got := f2.find("contacts", holder).Properties["lastname"]; got != "Summit General Contractors Inc" {
		t.Fatalf("holder name %q", got)
	}
	if len(f2.sb.Objects("notes")) != 1 {
		t.Fatalf("%d notes", len(f2.sb.Objects("notes")))
	}
}

func holderEvent(action event.Action, at time.Time, name, email string) event.Event {
	ev := event.Event{
		Source: event.SourceNowCerts, Type: "CertificateHolder." + string(action), Action: action,
		EntityKind: event.KindCertificateHolder, EntityID: "8d0f5c3e-2b1a-4c6d-9e8f-0a1b2c3d4e5f",
		OccurredAt: at, ReceivedAt: at.Add(time.Second),
		Holders: []event.Holder{{ID: "8D0F5C3E-2B1A-4C6D-9E8F-0A1B2C3D4E5F", Name: name, Email: email}},
		Insured: &event.Party{ID: "3f2e1d0c-b9a8-4765-8321-0fedcba98765", Name: "Acme Builders"},
	}
	ev.IdempotencyKey = event.Key("nowcerts", ev.Type, ev.EntityID, at.Format(time.RFC3339Nano))
	ev.ID = event.IDFor(ev.IdempotencyKey)
	return ev
}

func crmJob(ev event.Event) jobs.Job { return jobs.New(jobs.QueueCRM, ev, "req", ev.ReceivedAt) }

func TestOlderEventNeverOverwritesNewerState(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	ctx := context.Background()
	t1 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	// update(t2) arrives first, then insert(t1).
	if err := w.Process(ctx, crmJob(holderEvent(event.ActionUpdate, t2, "Summit GC (t2)", "t2@summit.example"))); err != nil {
		t.Fatal(err)
	}
	n := len(f.sb.Requests())
	if err := w.Process(ctx, crmJob(holderEvent(event.ActionInsert, t1, "Summit GC (t1)", "t1@summit.example"))); err != nil {
		t.Fatal(err)
	}
	h := f.find("contacts", holder)
	if h.Properties["lastname"] != "Summit GC (t2)" || h.Properties["email"] != "t2@summit.example" {
		t.Fatalf("holder %+v: the older insert overwrote the newer update", h.Properties)
	}
	if f.metric(obs.MetricCRMStale) != 2 { // the holder and its insured
		t.Fatalf("CrmStaleIgnored %d, want 2", f.metric(obs.MetricCRMStale))
	}
	for _, r := range f.sb.Requests()[n:] {
		if r.Path == "/crm/v3/objects/contacts/batch/upsert" {
			t.Fatalf("the stale insert wrote the contact: %s", r.Body)
		}
	}
	st, err := f.st.GetCRMState(ctx, holder)
	if err != nil || st.Fields[crm.FieldName] != "Summit GC (t2)" || st.Synced != st.Version {
		t.Fatalf("state %+v %v", st, err)
	}
}

func TestDeleteMarksInactiveAndNeverDeletes(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	ctx := context.Background()
	for _, name := range []string{"nowcerts-holder-insert.json", "nowcerts-holder-delete.json"} {
		if err := w.Process(ctx, job(t, name)); err != nil {
			t.Fatal(err)
		}
	}
	h := f.find("contacts", holder)
	if h.Properties["coi_status"] != crm.StatusInactive || h.Properties["lastname"] != "Summit General Contractors" {
		t.Fatalf("holder after delete %+v", h.Properties)
	}
	// The update (older than the delete) arrives late: the name may change, the status stays.
	if err := w.Process(ctx, job(t, "nowcerts-holder-update.json")); err != nil {
		t.Fatal(err)
	}
	h = f.find("contacts", holder)
	if h.Properties["coi_status"] != crm.StatusInactive || h.Properties["lastname"] != "Summit General Contractors Inc" {
		t.Fatalf("holder after the late update %+v", h.Properties)
	}
	for _, r := range f.sb.Requests() {
		if r.Method == "DELETE" || strings.Contains(r.Path, "archive") {
			t.Fatalf("a delete reached the CRM: %s %s", r.Method, r.Path)
		}
	}
	if co := f.find("companies", insured); co.Properties["coi_status"] == crm.StatusInactive {
		t.Fatal("a holder delete must not deactivate the insured")
	}
}

// crashStore fails chosen store calls once, as a worker dying at that point would.
type crashStore struct {
	*store.Store
	mu         sync.Mutex
	failSynced int
	failNote   int
}

var errCrash = errors.New("simulated crash")

func (c *crashStore) MarkCRMSynced(ctx context.Context, ext string, v int64, kind, id string) error {
	c.mu.Lock()
	fail := c.failSynced > 0
	if fail {
		c.failSynced--
	}
	c.mu.Unlock()
	if fail {
		return errCrash
	}
	return c.Store.MarkCRMSynced(ctx, ext, v, kind, id)
}

func (c *crashStore) CompleteCRMNote(ctx context.Context, jobID, owner, id string) error {
	c.mu.Lock()
	fail := c.failNote > 0
	if fail {
		c.failNote--
	}
	c.mu.Unlock()
	if fail {
		return errCrash
	}
	return c.Store.CompleteCRMNote(ctx, jobID, owner, id)
}

func TestCrashBetweenCRMWriteAndStateWrite(t *testing.T) {
	f := newFixture(t)
	cs := &crashStore{Store: f.st, failSynced: 2}
	ctx := context.Background()
	j := job(t, "nowcerts-holder-insert.json")
	if err := f.worker(cs, nil).Process(ctx, j); err == nil {
		t.Fatal("want a retryable error after the simulated crash")
	}
	first := f.sb.Requests()
	// Redelivery: the same snapshot is written again (identical), then recorded.
	if err := f.worker(cs, nil).Process(ctx, j); err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, r := range f.sb.Requests() {
		if r.Path == "/crm/v3/objects/contacts/batch/upsert" {
			bodies = append(bodies, string(r.Body))
		}
	}
	if len(bodies) != 2 || bodies[0] != bodies[1] {
		t.Fatalf("contact upserts %d, want 2 identical:\n%s", len(bodies), strings.Join(bodies, "\n"))
	}
	if len(f.sb.Objects("contacts")) != 1 {
		t.Fatal("duplicate contact")
	}
	// A third delivery writes nothing.
	n := len(f.sb.Requests())
	if err := f.worker(cs, nil).Process(ctx, j); err != nil {
		t.Fatal(err)
	}
	if len(f.sb.Requests()) != n || len(first) == 0 {
		t.Fatalf("third delivery made %d requests", len(f.sb.Requests())-n)
	}
}

// racingCRM runs another worker's whole job just before its first upsert
// reaches the CRM, so that the older snapshot lands after the newer one.
type racingCRM struct {
	crm.CRM
	once  sync.Once
	other func()
}

func (r *racingCRM) Upsert(ctx context.Context, typ crm.ObjectType, recs []crm.Record) ([]crm.Result, error) {
	if typ == crm.Contact {
		r.once.Do(r.other)
	}
	return r.CRM.Upsert(ctx, typ, recs)
}

func TestConcurrentOlderWriteLandingLastIsRepaired(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	t1 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	older := crmJob(holderEvent(event.ActionUpdate, t1, "Old Name", "old@summit.example"))
	newer := crmJob(holderEvent(event.ActionUpdate, t1.Add(time.Hour), "New Name", "new@summit.example"))
	var otherErr error
	rc := &racingCRM{CRM: f.hs, other: func() { otherErr = f.worker(nil, nil).Process(ctx, newer) }}
	if err := f.worker(nil, rc).Process(ctx, older); err != nil {
		t.Fatal(err)
	}
	if otherErr != nil {
		t.Fatal(otherErr)
	}
	if h := f.find("contacts", holder); h.Properties["lastname"] != "New Name" {
		t.Fatalf("holder %+v: the older snapshot, written last, was not repaired", h.Properties)
	}
}

func TestPermanentErrorIsRecordedNotRetried(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	ctx := context.Background()
	// The Cowbell agent and customer share an email: HubSpot refuses the second contact (207).
	j := job(t, "cowbell-quote-status.json")
	j.Event.Agent.Email = j.Event.Customer.Email
	if err := w.Process(ctx, j); err != nil {
		t.Fatalf("a permanent error must not fail the job: %v", err)
	}
	if f.metric(obs.MetricCRMFailed) != 1 {
		t.Fatalf("CrmFailed %d, want 1\n%s", f.metric(obs.MetricCRMFailed), f.logs)
	}
	fs, err := f.st.ListCRMFailures(ctx, 10)
	if err != nil || len(fs) != 1 || fs[0].JobID != j.ID || fs[0].ExternalID != crmsync.AgentExternalID("pat.lee@redrock.example") || fs[0].Code != "CONFLICT" {
		t.Fatalf("failures %+v %v", fs, err)
	}
	if !strings.Contains(f.logs.String(), "failed permanently") {
		t.Fatal("no log line for the permanent failure")
	}
	if strings.Contains(f.logs.String(), "pat.lee@redrock.example") {
		t.Fatal("an email appears in clear in the logs")
	}
}

func TestRetryableErrorFailsTheMessage(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	f.sb.AddFault(crmsandbox.Fault{Status: 500, Count: 1, Path: "/crm/v3/objects/contacts/batch/upsert"})
	in := sqsFile(t, "nowcerts-holder-insert.json")
	resp, err := w.Handle(context.Background(), in)
	if err != nil || len(resp.BatchItemFailures) != 1 || resp.BatchItemFailures[0].ItemIdentifier != in.Records[0].MessageId {
		t.Fatalf("%+v %v", resp, err)
	}
	if f.metric(obs.MetricCRMFailed) != 0 {
		t.Fatal("a retryable error is not a CrmFailed")
	}
	resp, err = w.Handle(context.Background(), in)
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("redelivery: %+v %v", resp, err)
	}
	f.find("contacts", holder)
}

func TestBadMessageGoesToTheDLQ(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	resp, err := w.Handle(context.Background(), events.SQSEvent{Records: []events.SQSMessage{{MessageId: "m1", Body: `{"v":99}`}}})
	if err != nil || len(resp.BatchItemFailures) != 1 {
		t.Fatalf("%+v %v", resp, err)
	}
}

func TestTimelineNoteOnTheInsuredOnce(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	ctx := context.Background()
	if err := w.Process(ctx, job(t, "nowcerts-holder-insert.json")); err != nil {
		t.Fatal(err)
	}
	tl := job(t, "timeline-sent.json")
	if err := w.Process(ctx, tl); err != nil {
		t.Fatal(err)
	}
	if err := w.Process(ctx, tl); err != nil {
		t.Fatal(err)
	}
	notes := f.sb.Objects("notes")
	if len(notes) != 1 {
		t.Fatalf("%d notes, want 1", len(notes))
	}
	body := notes[0].Properties["hs_note_body"]
	if !strings.Contains(body, "COI for Acme Builders sent by email to Summit General Contractors, certificate 1f3c0d2e…, 2026-11-21 14:02 UTC") {
		t.Fatalf("note body %q", body)
	}
	co, h := f.find("companies", insured), f.find("contacts", holder)
	if a := notes[0].Associations; len(a["companies"]) != 1 || a["companies"][0] != co.ID || len(a["contacts"]) != 1 || a["contacts"][0] != h.ID {
		t.Fatalf("note associations %v", a)
	}
	if f.metric(obs.MetricCRMNotes) != 1 {
		t.Fatalf("CrmNotes %d", f.metric(obs.MetricCRMNotes))
	}
}

func TestTimelineForAnUnknownInsuredCreatesIt(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	if err := w.Process(context.Background(), job(t, "timeline-sent.json")); err != nil {
		t.Fatal(err)
	}
	co := f.find("companies", insured)
	if co.Properties["name"] != "Acme Builders" {
		t.Fatalf("company %+v", co.Properties)
	}
	if n := f.sb.Objects("notes"); len(n) != 1 || len(n[0].Associations["companies"]) != 1 {
		t.Fatalf("notes %+v", n)
	}
}

func TestTimelineCrashAfterNoteCreatedAddsNoSecondNote(t *testing.T) {
	f := newFixture(t)
	cs := &crashStore{Store: f.st, failNote: 1}
	ctx := context.Background()
	tl := job(t, "timeline-sent.json")
	if err := f.worker(cs, nil).Process(ctx, tl); err == nil {
		t.Fatal("want an error after the simulated crash")
	}
	// Redelivered while the dead attempt's lease runs: retried later, nothing written.
	n := len(f.sb.Requests())
	if err := f.worker(cs, nil).Process(ctx, tl); !errors.Is(err, store.ErrNoteBusy) {
		t.Fatalf("during the lease: %v, want ErrNoteBusy", err)
	}
	if len(f.sb.Requests()) != n {
		t.Fatal("a busy note made CRM requests")
	}
	f.clk.Add(10 * time.Minute)
	if err := f.worker(cs, nil).Process(ctx, tl); err != nil {
		t.Fatal(err)
	}
	if notes := f.sb.Objects("notes"); len(notes) != 1 {
		t.Fatalf("%d notes after recovery, want 1", len(notes))
	}
	var searched bool
	for _, r := range f.sb.Requests()[n:] {
		searched = searched || r.Path == "/crm/v3/objects/notes/search"
	}
	if !searched {
		t.Fatal("the recovering attempt did not look for the note")
	}
	nt, err := f.st.GetCRMNote(ctx, tl.ID)
	if err != nil || nt.State != store.NoteDone || nt.CRMID == "" {
		t.Fatalf("note claim %+v %v", nt, err)
	}
}

func TestTimelineNoteFailures(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	ctx := context.Background()
	tl := job(t, "timeline-sent.json")
	// 500: the CRM may have created it → the next attempt searches first.
	f.sb.AddFault(crmsandbox.Fault{Status: 500, Count: 1, Method: "POST", Path: "/crm/v3/objects/notes"})
	if err := w.Process(ctx, tl); err == nil {
		t.Fatal("want a retryable error")
	}
	if nt, _ := f.st.GetCRMNote(ctx, tl.ID); nt.State != store.NoteUncertain {
		t.Fatalf("after a 500: %+v", nt)
	}
	if err := w.Process(ctx, tl); err != nil {
		t.Fatal(err)
	}
	if len(f.sb.Objects("notes")) != 1 {
		t.Fatal("want one note")
	}

	// 429 (refused, certainly not created) → FREE, then created without a search.
	f2 := newFixture(t)
	w2 := f2.worker(nil, nil)
	f2.sb.AddFault(crmsandbox.Fault{Status: 429, Count: 9, Method: "POST", Path: "/crm/v3/objects/notes", Policy: "DAILY"})
	if err := w2.Process(ctx, tl); err == nil {
		t.Fatal("want a retryable error")
	}
	if nt, _ := f2.st.GetCRMNote(ctx, tl.ID); nt.State != store.NoteFree {
		t.Fatalf("after a 429: %+v", nt)
	}
}

func TestTimelineWithoutInsuredIsPermanent(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	tl := job(t, "timeline-sent.json")
	tl.Timeline.InsuredID = ""
	if err := w.Process(context.Background(), tl); err != nil {
		t.Fatal(err)
	}
	if f.metric(obs.MetricCRMFailed) != 1 || len(f.sb.Requests()) != 0 {
		t.Fatalf("CrmFailed %d, %d requests", f.metric(obs.MetricCRMFailed), len(f.sb.Requests()))
	}
}

func TestTimelineDoesNotChangeCRMData(t *testing.T) {
	f := newFixture(t)
	w := f.worker(nil, nil)
	ctx := context.Background()
	if err := w.Process(ctx, job(t, "nowcerts-holder-insert.json")); err != nil {
		t.Fatal(err)
	}
	n := f.upserts()
	tl := job(t, "timeline-sent.json")
	tl.Timeline.InsuredName = "Acme Builders (as the send pipeline spells it)"
	if err := w.Process(ctx, tl); err != nil {
		t.Fatal(err)
	}
	if f.upserts() != n {
		t.Fatal("a timeline entry rewrote the insured")
	}
	if got := f.find("companies", insured).Properties["name"]; got != "Acme Builders" {
		t.Fatalf("name %q", got)
	}
}
