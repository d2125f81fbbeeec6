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

// GetSecretValue returns the current (AWSCURRENT) string value of the secret id.
func (s SecretsManager) GetSecretValue(ctx context.Context, id string) (string, error) {
	out, err := s.API.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return "", fmt.Errorf("secrets manager: get %s: %w", id, err)
	}
	return aws.ToString(out.SecretString), nil
}

// PutSecretValue stores value as the new current version of the secret id.
func (s SecretsManager) PutSecretValue(ctx context.Context, id, value string) error {
	_, err := s.API.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String(id), SecretString: aws.String(value)})
	if err != nil {
		return fmt.Errorf("secrets manager: put %s: %w", id, err)
	}
	return nil
}
