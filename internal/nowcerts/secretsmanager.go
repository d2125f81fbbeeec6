package nowcerts

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// SecretsManagerAPI is the part of the Secrets Manager client the adapter uses.
type SecretsManagerAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, opts ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
}

// SecretsManager adapts a Secrets Manager client to Secrets.
type SecretsManager struct {
	API SecretsManagerAPI
}

// GetSecret returns the version versionID of the secret id (GetSecretValue
// with VersionId), or the current (AWSCURRENT) version when versionID is "".
func (s SecretsManager) GetSecret(ctx context.Context, id, versionID string) (SecretVersion, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	out, err := s.API.GetSecretValue(ctx, in)
	if err != nil {
		if versionID != "" {
			return SecretVersion{}, fmt.Errorf("secrets manager: get %s version %s: %w", id, versionID, err)
		}
		return SecretVersion{}, fmt.Errorf("secrets manager: get %s: %w", id, err)
	}
	return SecretVersion{Value: aws.ToString(out.SecretString), VersionID: aws.ToString(out.VersionId)}, nil
}

// GetSecretValue returns the current (AWSCURRENT) string value of the secret id.
func (s SecretsManager) GetSecretValue(ctx context.Context, id string) (string, error) {
	v, err := s.GetSecret(ctx, id, "")
	return v.Value, err
}

// PutSecret stores value as the new current version of the secret id and
// returns the version id Secrets Manager gave it.
func (s SecretsManager) PutSecret(ctx context.Context, id, value string) (string, error) {
	out, err := s.API.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(id), SecretString: aws.String(value)})
	if err != nil {
		return "", fmt.Errorf("secrets manager: put %s: %w", id, err)
	}
	return aws.ToString(out.VersionId), nil
}
