package store

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// getItem reads the item at key (strongly consistent) and decodes it onto a
// copy of base: attributes the item lacks keep base's values (pass the zero
// value, or defaults). It returns an error wrapping ErrNotFound, and base, when
// there is no such item. what names the item in errors ("send snd_1").
func getItem[T any](ctx context.Context, s *Store, key map[string]types.AttributeValue, what string, base T) (T, error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.table), Key: key, ConsistentRead: aws.Bool(true)})
	if err != nil {
		return base, fmt.Errorf("get %s: %w", what, err)
	}
	if len(out.Item) == 0 {
		return base, fmt.Errorf("get %s: %w", what, ErrNotFound)
	}
	v := base
	if err := attributevalue.UnmarshalMap(out.Item, &v); err != nil {
		var zero T
		return zero, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, nil
}
