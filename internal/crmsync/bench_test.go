package crmsync

import (
	"testing"
	"time"

	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/store"
)

// BenchmarkMapMergeHash is the CPU part of one event: map it, merge each
// update into a state that already has older values, hash the snapshot.
func BenchmarkMapMergeHash(b *testing.B) {
	body := []byte(`{"meta":{"event":"quote.status"},"data":{"quoteId":"16e420fa","quoteNumber":"QCB-250","quoteStatus":"READY",
		"modified":"2026-11-21T14:01:54.407+0000","accountId":"877e9ee2","accountName":"Red Rock Test Company","customerFirstName":"Pat",
		"customerLastName":"Lee","customerEmail":"pat@rr.example","customerPhone":"1234","agentEmail":"sam@qf.example","agentFirstName":"Sam","agentLastName":"Rivera"}}`)
	ev, err := event.Parse(event.SourceCowbell, body, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	old := Stamp(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "evt_old")
	b.ReportAllocs()
	for b.Loop() {
		p := MapEvent(ev)
		for _, u := range append(p.Companies, p.Contacts...) {
			st := store.CRMState{Fields: map[string]string{}, Stamps: map[string]string{}}
			for k := range u.Fields {
				st.Fields[k], st.Stamps[k] = "old", old
			}
			m := merge(st, u, p.Stamp)
			_ = hashFields(m.fields)
		}
	}
}
