package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Reissue settings: what a master-certificate update does to the certificate's
// historical holders.
const (
	ReissueAuto = "auto" // send the new revision to every historical holder
	ReissueHold = "hold" // hold one send per historical holder for approval
	ReissueOff  = "off"  // do nothing (staff reissue by hand)
)

// DefaultAgency is the settings key used when an event names no agency.
const DefaultAgency = "default"

// Rules are an agency's hold rules: each true rule holds a certificate for staff
// approval when its condition is met. See internal/sending/rules.md.
type Rules struct {
	HoldAdditionalInsured   bool `dynamodbav:"holdAdditionalInsured" json:"holdAdditionalInsured"`
	HoldWaiverOfSubrogation bool `dynamodbav:"holdWaiverOfSubrogation" json:"holdWaiverOfSubrogation"`
	HoldSpecialWording      bool `dynamodbav:"holdSpecialWording" json:"holdSpecialWording"`
	HoldPendingApproval     bool `dynamodbav:"holdPendingApproval" json:"holdPendingApproval"`
	HoldCancelledPolicy     bool `dynamodbav:"holdCancelledPolicy" json:"holdCancelledPolicy"`
	ApproveAll              bool `dynamodbav:"approveAll" json:"approveAll"`
}

// Settings are one agency's send settings (AGENCY#<id> / SETTINGS). Attributes
// missing from the item keep their default.
type Settings struct {
	AgencyID string `dynamodbav:"agencyId" json:"agencyId"`
	Rules    Rules  `dynamodbav:"rules" json:"rules"`
	// ReissueOnMasterUpdate is auto | hold | off.
	ReissueOnMasterUpdate string `dynamodbav:"reissueOnMasterUpdate" json:"reissueOnMasterUpdate"`
	// ResendUnknown: a send whose outcome is unknown is sent again on the next
	// delivery instead of waiting for review. Default false.
	ResendUnknown bool `dynamodbav:"resendUnknown" json:"resendUnknown"`
	// EmailSubject and EmailBody are templates; see internal/sending/rules.md
	// for their placeholders.
	EmailSubject string    `dynamodbav:"emailSubject" json:"emailSubject"`
	EmailBody    string    `dynamodbav:"emailBody" json:"emailBody"`
	UpdatedAt    time.Time `dynamodbav:"updatedAt,omitempty" json:"updatedAt,omitzero"`
	UpdatedBy    string    `dynamodbav:"updatedBy,omitempty" json:"updatedBy,omitempty"`
}

// DefaultSettings are the settings of an agency that has none stored.
func DefaultSettings(agencyID string) Settings {
	return Settings{
		AgencyID: agencyID,
		Rules: Rules{
			HoldAdditionalInsured:   true,
			HoldWaiverOfSubrogation: true,
			HoldSpecialWording:      true,
			HoldPendingApproval:     true,
			HoldCancelledPolicy:     true,
			ApproveAll:              false,
		},
		ReissueOnMasterUpdate: ReissueHold,
		ResendUnknown:         false,
		EmailSubject:          "Certificate of insurance: {insured}",
		EmailBody:             "Hello {holder},\n\nPlease find attached the certificate of insurance for {insured} ({certificate}).\n\nKind regards",
	}
}

// Validate reports a settings value that cannot be stored.
func (s Settings) Validate() error {
	switch s.ReissueOnMasterUpdate {
	case ReissueAuto, ReissueHold, ReissueOff:
	default:
		return fmt.Errorf("settings: reissueOnMasterUpdate %q: want auto, hold or off", s.ReissueOnMasterUpdate)
	}
	if strings.TrimSpace(s.AgencyID) == "" {
		return fmt.Errorf("settings: no agency id")
	}
	return nil
}

func agencyKey(agencyID string) map[string]types.AttributeValue {
	if agencyID == "" {
		agencyID = DefaultAgency
	}
	return map[string]types.AttributeValue{
		"PK": &types.AttributeValueMemberS{Value: "AGENCY#" + agencyID},
		"SK": &types.AttributeValueMemberS{Value: "SETTINGS"},
	}
}

// GetSettings returns agencyID's settings, the defaults for anything not stored.
func (s *Store) GetSettings(ctx context.Context, agencyID string) (Settings, error) {
	if agencyID == "" {
		agencyID = DefaultAgency
	}
	set, err := getItem(ctx, s, agencyKey(agencyID), "settings of agency "+agencyID, DefaultSettings(agencyID))
	switch {
	case errors.Is(err, ErrNotFound):
		return DefaultSettings(agencyID), nil
	case err != nil:
		return Settings{}, err
	}
	set.AgencyID = agencyID
	return set, nil
}

// PutSettings stores an agency's settings (whole, replacing what was there).
func (s *Store) PutSettings(ctx context.Context, set Settings) error {
	if err := set.Validate(); err != nil {
		return err
	}
	if set.UpdatedAt.IsZero() {
		set.UpdatedAt = s.now().UTC()
	}
	item, err := attributevalue.MarshalMap(set)
	if err != nil {
		return fmt.Errorf("encode settings of agency %s: %w", set.AgencyID, err)
	}
	for k, v := range agencyKey(set.AgencyID) {
		item[k] = v
	}
	if _, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.table), Item: item}); err != nil {
		return fmt.Errorf("put settings of agency %s: %w", set.AgencyID, err)
	}
	return nil
}
