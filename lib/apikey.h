/*
 * API keys: "assay_<8 hex>_<48 hex>". The first part ("assay_<8 hex>") is
 * the prefix, stored in clear to find the key and to name it to humans;
 * only the SHA-256 of the whole key is stored. Comparison of digests is
 * constant-time. Stream tokens, which an API key makes to let a browser
 * read one run's events, are "sse_<48 hex>", likewise stored only as
 * their SHA-256. Nothing here logs or keeps a key or a token.
 */
#ifndef ASSAY_APIKEY_H
#define ASSAY_APIKEY_H

#include <stdbool.h>
#include <stddef.h>

#define APIKEY_LEN        (6 + 8 + 1 + 48)
#define APIKEY_PREFIX_LEN (6 + 8)
#define APIKEY_TOKEN_LEN  (4 + 48)

/* A new random key and its prefix. false if no randomness was available. */
bool apikey_generate(char key[APIKEY_LEN + 1], char prefix[APIKEY_PREFIX_LEN + 1]);
/* The prefix of a well-formed key; false if key is not shaped like one. */
bool apikey_prefix(const char *key, char prefix[APIKEY_PREFIX_LEN + 1]);
/* A new random stream token. false if no randomness was available. */
bool apikey_token_generate(char token[APIKEY_TOKEN_LEN + 1]);
/* Is token shaped like a stream token (it may still be unknown)? */
bool apikey_token_valid(const char *token);
/* SHA-256 of s as 64 lowercase hex digits. */
void apikey_sha256_hex(const char *s, size_t len, char hex[65]);
/* Compare two equal-length strings in time independent of their contents. */
bool apikey_equal(const char *a, const char *b, size_t len);

#endif
