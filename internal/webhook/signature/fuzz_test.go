package signature

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
	"time"
)

// FuzzVerify checks that Verify never panics on any header, that a signature made
// by Sign always verifies, and that changing the body, the id or the timestamp
// after signing always fails.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(docPayload), docID, int64(1614265330), []byte("key"), docSignature, uint16(0))
	f.Add([]byte(""), "x", int64(0), []byte{0}, "v1,", uint16(7))
	f.Add([]byte(`{"meta":{"event":"quote.status"}}`), "msg.1.2", int64(-1), []byte("k\x00"), "v1,a v1,b", uint16(3))
	f.Fuzz(func(t *testing.T, body []byte, id string, unix int64, key []byte, rawSig string, pos uint16) {
		now := time.Unix(unix, 0)
		secret := NewSecret(key)
		ts := strconv.FormatInt(unix, 10)

		// Arbitrary headers: must not panic; a random signature essentially never verifies.
		_ = Verify(body, Header{ID: id, Timestamp: ts, Signature: rawSig}, []Secret{secret}, now)
		_ = Verify(body, Header{ID: id, Timestamp: rawSig, Signature: rawSig}, []Secret{secret}, now)

		sig := Sign(body, id, now, secret)
		h := Header{ID: id, Timestamp: ts, Signature: sig}
		err := Verify(body, h, []Secret{secret}, now)
		if id == "" {
			if !errors.Is(err, ErrMissingHeader) {
				t.Fatalf("empty id: Verify = %v, want ErrMissingHeader", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("valid signature rejected: %v", err)
		}
		// Also among other entries and with another secret first.
		h2 := h
		h2.Signature = rawSig + " " + sig
		if err := Verify(body, h2, []Secret{NewSecret(append(bytes.Clone(key), 1)), secret}, now); err != nil {
			t.Fatalf("valid signature among others rejected: %v", err)
		}

		mustFail := func(what string, b []byte, h Header) {
			t.Helper()
			if err := Verify(b, h, []Secret{secret}, now); !errors.Is(err, ErrNoMatch) {
				t.Fatalf("%s: Verify = %v, want ErrNoMatch", what, err)
			}
		}
		if len(body) > 0 {
			flipped := bytes.Clone(body)
			flipped[int(pos)%len(body)] ^= 1 << (pos % 8)
			mustFail("body bit flipped", flipped, h)
			mustFail("body truncated", body[:len(body)-1], h)
		}
		mustFail("body extended", append(bytes.Clone(body), byte(pos)), h)
		mustFail("id extended", body, Header{ID: id + "x", Timestamp: ts, Signature: sig})
		if len(id) > 1 {
			mustFail("id truncated", body, Header{ID: id[:len(id)-1], Timestamp: ts, Signature: sig})
		}
		if unix < 1<<62 {
			later := strconv.FormatInt(unix+1, 10)
			mustFail("timestamp changed", body, Header{ID: id, Timestamp: later, Signature: sig})
		}
		// (Not key+0x00: HMAC pads short keys with zeros, so that is the same key.)
		if err := Verify(body, h, []Secret{NewSecret(append(bytes.Clone(key), 1))}, now); !errors.Is(err, ErrNoMatch) {
			t.Fatalf("other key: Verify = %v, want ErrNoMatch", err)
		}
	})
}
