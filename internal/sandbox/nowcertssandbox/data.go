package nowcertssandbox

import (
	"crypto/rand"
	"fmt"
	"strings"
	"time"
)

// Certificate is a master certificate (a CertificatesList row plus what the
// sandbox needs to know about it). PendingApproval is not part of the list's
// answer: NowCerts documents no field for it.
type Certificate struct {
	DatabaseID        string    `json:"databaseId"`
	Name              string    `json:"name"`
	InsuredDatabaseID string    `json:"insuredDatabaseId"`
	InsuredEmail      string    `json:"insuredEmail"`
	InsuredName       string    `json:"insuredName,omitempty"`
	CreateDate        time.Time `json:"createDate"`
	PendingApproval   bool      `json:"pendingApproval,omitempty"`
}

// Holder is a CertificateHolderList row.
type Holder struct {
	DatabaseID   string    `json:"databaseId"`
	Name         string    `json:"name"`
	AddressLine1 string    `json:"addressLine1"`
	AddressLine2 string    `json:"addressLine2"`
	City         string    `json:"city"`
	State        string    `json:"state"`
	ZipCode      string    `json:"zipCode"`
	Phone        string    `json:"phone"`
	Fax          string    `json:"fax"`
	EMail        string    `json:"eMail"`
	CreateDate   time.Time `json:"createDate"`
	ChangeDate   time.Time `json:"changeDate"`
}

// HistoricalHolder is a HistoricalCertificateHolderList row: a holder that got
// (or is to get) a certificate. Its DatabaseID is what Approve takes.
type HistoricalHolder struct {
	DatabaseID            string    `json:"databaseId"`
	Name                  string    `json:"name"`
	EMail                 string    `json:"eMail"`
	Fax                   string    `json:"fax"`
	CertificateID         string    `json:"certificateId"`
	CertificateName       string    `json:"certificateName"`
	InsuredDatabaseID     string    `json:"insuredDatabaseId"`
	InsuredEmail          string    `json:"insuredEmail"`
	InsuredCommercialName string    `json:"insuredCommercialName"`
	CreateDate            time.Time `json:"createDate"`
	ChangeDate            time.Time `json:"changeDate"`
	// HolderID links the row to its CertificateHolderList row (not in NowCerts
	// answer; the sandbox uses it to add a row per holder on send).
	HolderID string `json:"holderId,omitempty"`
}

// SeedData is data to add: certificates, holders, historical holders.
type SeedData struct {
	Certificates      []Certificate      `json:"certificates,omitempty"`
	Holders           []Holder           `json:"holders,omitempty"`
	HistoricalHolders []HistoricalHolder `json:"historicalHolders,omitempty"`
}

// Ids of the default seed data, for tests and `make run` scripts.
const (
	// Acme Builders LLC, the insured of most seeded certificates.
	SeedInsuredAcme = "7b1e4a52-3c9d-4f60-a8e2-51d0c3b9e7a4"
	// Brightline Logistics Inc, a second insured.
	SeedInsuredBrightline = "c4d2f9e1-6a3b-4c85-9e17-0b8a5d2f6c13"

	// An ACORD 25 for Acme, ready to send.
	SeedCertificateReady = "3f2b6c1e-8a4d-4e0f-9b1a-2c5d7e8f9a01"
	// An ACORD 25 for Brightline, ready to send.
	SeedCertificateReady2 = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
	// An ACORD 25 for Acme with special wording, pending approval: SendCertificate
	// answers status 0 until Approve is called with SeedHistoricalPending.
	SeedCertificatePending = "e5c1a7b3-2d4f-4e6a-b8c0-9d1e3f5a7b92"

	// Holders.
	SeedHolderEmail   = "0c9d8e7f-6a5b-4c3d-9e2f-1a0b9c8d7e6f" // Northwind Property Management: email only
	SeedHolderFax     = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d" // Harbor Street Lender Corp: fax only
	SeedHolderBoth    = "b2c3d4e5-f6a7-4b8c-9d0e-1f2a3b4c5d6e" // City of Springfield: email and fax
	SeedHolderNeither = "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9" // Old Mill Partners: neither

	// Historical holders.
	SeedHistoricalReady   = "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d" // SeedCertificateReady sent to SeedHolderEmail
	SeedHistoricalPending = "d4c3b2a1-f6e5-4b7a-9d8c-5c4b3a2f1e0d" // SeedCertificatePending for SeedHolderBoth, pending approval
)

// zone is the offset NowCerts timestamps carry in the sandbox's answers.
var zone = time.FixedZone("", -5*3600)

func at(y int, m time.Month, d, h, mi int) time.Time { return time.Date(y, m, d, h, mi, 0, 0, zone) }

// DefaultSeed is the data a new (or reset) sandbox holds.
func DefaultSeed() SeedData {
	const acord25 = "CERTIFICATE OF LIABILITY INSURANCE (ACORD 25)"
	return SeedData{
		Certificates: []Certificate{
			{DatabaseID: SeedCertificateReady, Name: acord25 + " (11/04/2025)", InsuredDatabaseID: SeedInsuredAcme,
				InsuredEmail: "office@acme-builders.example", InsuredName: "Acme Builders LLC", CreateDate: at(2025, 11, 4, 9, 12)},
			{DatabaseID: SeedCertificateReady2, Name: acord25 + " (01/15/2026)", InsuredDatabaseID: SeedInsuredBrightline,
				InsuredEmail: "risk@brightline.example", InsuredName: "Brightline Logistics Inc", CreateDate: at(2026, 1, 15, 14, 30)},
			{DatabaseID: SeedCertificatePending, Name: acord25 + " (02/02/2026)", InsuredDatabaseID: SeedInsuredAcme,
				InsuredEmail: "office@acme-builders.example", InsuredName: "Acme Builders LLC", CreateDate: at(2026, 2, 2, 11, 5),
				PendingApproval: true},
		},
		Holders: []Holder{
			{DatabaseID: SeedHolderEmail, Name: "Northwind Property Management", AddressLine1: "400 Market St", City: "Springfield",
				State: "IL", ZipCode: "62701", Phone: "(217) 555-0140", EMail: "coi@northwind-pm.example",
				CreateDate: at(2024, 3, 1, 10, 0), ChangeDate: at(2025, 6, 12, 16, 20)},
			{DatabaseID: SeedHolderFax, Name: "Harbor Street Lender Corp", AddressLine1: "12 Harbor St", AddressLine2: "Suite 300",
				City: "Peoria", State: "IL", ZipCode: "61602", Phone: "(309) 555-0199", Fax: "(309) 555-0198",
				CreateDate: at(2024, 5, 20, 8, 45), ChangeDate: at(2024, 5, 20, 8, 45)},
			{DatabaseID: SeedHolderBoth, Name: "City of Springfield", AddressLine1: "800 E Monroe St", City: "Springfield",
				State: "IL", ZipCode: "62701", Phone: "(217) 555-0100", Fax: "(217) 555-0101", EMail: "risk@springfield.example",
				CreateDate: at(2023, 9, 9, 13, 0), ChangeDate: at(2025, 12, 1, 9, 30)},
			{DatabaseID: SeedHolderNeither, Name: "Old Mill Partners", AddressLine1: "1 Mill Rd", City: "Decatur",
				State: "IL", ZipCode: "62521", CreateDate: at(2025, 2, 14, 15, 15), ChangeDate: at(2025, 2, 14, 15, 15)},
		},
		HistoricalHolders: []HistoricalHolder{
			{DatabaseID: SeedHistoricalReady, HolderID: SeedHolderEmail, Name: "Northwind Property Management",
				EMail: "coi@northwind-pm.example", CertificateID: SeedCertificateReady, CertificateName: acord25 + " (11/04/2025)",
				InsuredDatabaseID: SeedInsuredAcme, InsuredEmail: "office@acme-builders.example", InsuredCommercialName: "Acme Builders LLC",
				CreateDate: at(2025, 11, 4, 9, 20), ChangeDate: at(2025, 11, 4, 9, 20)},
			{DatabaseID: SeedHistoricalPending, HolderID: SeedHolderBoth, Name: "City of Springfield",
				EMail: "risk@springfield.example", Fax: "(217) 555-0101", CertificateID: SeedCertificatePending,
				CertificateName: acord25 + " (02/02/2026)", InsuredDatabaseID: SeedInsuredAcme, InsuredEmail: "office@acme-builders.example",
				InsuredCommercialName: "Acme Builders LLC", CreateDate: at(2026, 2, 2, 11, 6), ChangeDate: at(2026, 2, 2, 11, 6)},
		},
	}
}

// newGUID returns a random lower-case GUID.
func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

func sameID(a, b string) bool { return strings.EqualFold(a, b) }
