package nowcertssandbox

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// admin serves /_sandbox/.
func (s *Sandbox) admin(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/_sandbox"), "/")
	switch route {
	case "GET /calls":
		if p := r.URL.Query().Get("path"); p != "" {
			s.write(w, answer(http.StatusOK, nonNil(s.CallsTo(p))))
			return
		}
		s.write(w, answer(http.StatusOK, nonNil(s.Calls())))
	case "GET /sends":
		s.write(w, answer(http.StatusOK, nonNil(s.Sends())))
	case "GET /approvals":
		s.write(w, answer(http.StatusOK, nonNil(s.Approvals())))
	case "GET /stats":
		s.write(w, answer(http.StatusOK, s.Stats()))
	case "GET /faults":
		s.write(w, answer(http.StatusOK, nonNil(s.Faults())))
	case "DELETE /faults":
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case "POST /faults":
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			adminError(w, http.StatusBadRequest, "read body: "+err.Error())
			return
		}
		var list []Fault
		if strings.HasPrefix(strings.TrimSpace(string(body)), "[") {
			err = json.Unmarshal(body, &list)
		} else {
			var f Fault
			err = json.Unmarshal(body, &f)
			list = []Fault{f}
		}
		if err != nil {
			adminError(w, http.StatusBadRequest, "fault: "+err.Error())
			return
		}
		for _, f := range list {
			if err := s.AddFault(f); err != nil {
				adminError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		s.write(w, answer(http.StatusCreated, nonNil(s.Faults())))
	case "POST /reset":
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	case "POST /expire-tokens":
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	case "POST /certificates":
		body, err := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		if err != nil {
			adminError(w, http.StatusBadRequest, "read body: "+err.Error())
			return
		}
		var probe map[string]json.RawMessage
		if err := json.Unmarshal(body, &probe); err != nil {
			adminError(w, http.StatusBadRequest, "want a JSON object: "+err.Error())
			return
		}
		var d SeedData
		if _, one := probe["databaseId"]; one || probe["name"] != nil {
			var c Certificate
			err = json.Unmarshal(body, &c)
			d.Certificates = []Certificate{c}
		} else {
			dec := json.NewDecoder(strings.NewReader(string(body)))
			dec.DisallowUnknownFields()
			err = dec.Decode(&d)
		}
		if err != nil {
			adminError(w, http.StatusBadRequest, "seed: "+err.Error())
			return
		}
		out, err := s.Seed(d)
		if err != nil {
			adminError(w, http.StatusBadRequest, err.Error())
			return
		}
		s.write(w, answer(http.StatusCreated, out))
	default:
		adminError(w, http.StatusNotFound, "no admin route "+route)
	}
}

func adminError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// nonNil renders an empty list as [] rather than null.
func nonNil[T any](xs []T) []T {
	if xs == nil {
		return []T{}
	}
	return xs
}
