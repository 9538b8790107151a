// Package store keeps books in a SQL database through gorm: MySQL in a scaled
// deployment, an embedded SQLite file by default. It also keeps the user
// accounts and their refresh-token sessions. It knows nothing of HTTP;
// callers get plain Book and User values and the errors of errors.go.
package store

import "time"

// Book is a book as bookhub keeps it. Prices are integer cents, so they are
// exact; the API converts to and from decimal JSON numbers.
type Book struct {
	ID     int64
	Title  string
	Author string
	// ISBN is the 13 digits of an ISBN-13 (see NormalizeISBN); "" means
	// none. A row stored before ISBN-10s were converted may still hold the
	// 10 characters of an ISBN-10 (see migration 2 in schema.go).
	ISBN       string
	PriceCents int64
	Stock      int64
	// CostCents is what the shop paid per copy, in cents; staff only.
	CostCents int64
	// Supplier is who the shop buys the book from; "" means not recorded.
	// Staff only.
	Supplier string
	// Version starts at 1 and is bumped by every update.
	Version   int64
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Sort orders accepted by List; a leading "-" means descending.
var SortFields = []string{"id", "title", "author", "price", "created_at", "updated_at"}

// ListOptions select and order a page of books. Zero values mean "no filter".
type ListOptions struct {
	// Limit is the page size: 0 means DefaultLimit, above MaxLimit is an error.
	Limit int
	// Cursor is NextCursor of the previous page; "" starts at the beginning.
	// It is at most MaxCursorLen bytes.
	Cursor string
	// Author matches the author exactly (case-insensitive).
	Author string
	// Query matches a substring of title or author (case-insensitive).
	Query string
	// MinPriceCents and MaxPriceCents bound the price, inclusive; nil = none.
	MinPriceCents *int64
	MaxPriceCents *int64
	// Sort is one of SortFields, optionally prefixed with "-"; "" means "id".
	Sort string
}

// Page limits.
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

// Page is one page of List results.
type Page struct {
	Books []Book
	// NextCursor fetches the following page; "" means this was the last.
	NextCursor string
	// Position is the position of the "books" channel in the snapshot the
	// page was read from: the page reflects every event up to it.
	Position Position
}
