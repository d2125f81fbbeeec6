package event

import (
	"bytes"
	"strings"
	"testing"
)

// benchCowbellBody is a ~2 KB Cowbell event: the seed's non-renewal notice with
// a pre-signed document URL of realistic length.
func benchCowbellBody(b *testing.B) []byte {
	body := readFixture(b, "cowbell/policy_non_renewal_carrier_change.json")
	const marker = "SIGNATURE-DO-NOT-LOG-0001"
	pad := 2048 - len(body)
	if pad < 0 || !bytes.Contains(body, []byte(marker)) {
		b.Fatalf("fixture is %d bytes / lacks %s", len(body), marker)
	}
	return bytes.Replace(body, []byte(marker), []byte(marker+strings.Repeat("f", pad)), 1)
}

func BenchmarkParseCowbell(b *testing.B) {
	body := benchCowbellBody(b)
	if len(body) != 2048 {
		b.Fatalf("body is %d bytes", len(body))
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(SourceCowbell, body, received); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseNowCerts(b *testing.B) {
	body := readFixture(b, "nowcerts/nested_data_holder_update.json")
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(SourceNowCerts, body, received); err != nil {
			b.Fatal(err)
		}
	}
}
