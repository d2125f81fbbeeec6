package sending

import (
	"github.com/coiflow/coiflow/internal/event"
	"github.com/coiflow/coiflow/internal/store"
)

// Hold reasons. A hold records every reason that applies, in this order. The
// texts are stable: the staff page, the CRM timeline and exports show them.
const (
	ReasonAdditionalInsured = "additional insured requested"
	ReasonWaiver            = "waiver of subrogation requested"
	ReasonSpecialWording    = "special description wording requested"
	ReasonPendingApproval   = "certificate pending approval in NowCerts"
	ReasonPolicyCancelled   = "policy reported cancelled by the carrier"
	ReasonNoHolder          = "no holder"
	ReasonNoRecipient       = "holder has neither email nor fax"
	ReasonReissue           = "master certificate updated: reissue held for approval"
	ReasonApproveAll        = "agency approves every certificate"
	// ReasonNewerRevision: decided on an older revision of the certificate
	// (a hold of it, or an event that arrived late); NowCerts would send the
	// newer content, so staff look at it first.
	ReasonNewerRevision = "certificate changed since (a newer revision arrived): review before sending"
	// ReasonUntimedRevision: an event without a time of its own changed the
	// certificate's revision; only its arrival says it is the newer one.
	ReasonUntimedRevision = "certificate revision from an event without a time: order unknown, review before sending"
)

// Facts are what the rules look at for one (certificate, holder) pair.
type Facts struct {
	Certificate event.Certificate
	// HasHolder: the job names a holder at all (Cowbell certificates may not).
	HasHolder bool
	// HasRecipient: the holder has an email address or a fax number.
	HasRecipient bool
	// PolicyCancelled: the carrier reported the certificate's policy cancelled.
	PolicyCancelled bool
	// HeldReissue: a master-certificate update with reissueOnMasterUpdate=hold.
	HeldReissue bool
}

// Evaluate applies an agency's rules to f and returns every hold reason that
// applies (none: send). A missing holder or recipient always holds: there is
// nobody to send to. See rules.md for the rules as the README documents them.
func Evaluate(r store.Rules, f Facts) []string {
	var reasons []string
	c := f.Certificate
	if r.HoldAdditionalInsured && c.AdditionalInsured {
		reasons = append(reasons, ReasonAdditionalInsured)
	}
	if r.HoldWaiverOfSubrogation && c.WaiverOfSubrogation {
		reasons = append(reasons, ReasonWaiver)
	}
	if r.HoldSpecialWording && c.SpecialWording {
		reasons = append(reasons, ReasonSpecialWording)
	}
	if r.HoldPendingApproval && c.PendingApproval {
		reasons = append(reasons, ReasonPendingApproval)
	}
	if r.HoldCancelledPolicy && f.PolicyCancelled {
		reasons = append(reasons, ReasonPolicyCancelled)
	}
	if !f.HasHolder {
		reasons = append(reasons, ReasonNoHolder)
	} else if !f.HasRecipient {
		reasons = append(reasons, ReasonNoRecipient)
	}
	if f.HeldReissue {
		reasons = append(reasons, ReasonReissue)
	}
	if r.ApproveAll {
		reasons = append(reasons, ReasonApproveAll)
	}
	return reasons
}
