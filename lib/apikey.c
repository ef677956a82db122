/*
 * API key and stream token generation, shape checks and hashing: see
 * apikey.h.
 */
#include "config.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "apikey.h"
#include "util.h"

bool
apikey_generate(char key[APIKEY_LEN + 1], char prefix[APIKEY_PREFIX_LEN + 1])
{
	char id[9], secret[49];

	if (!util_random_hex(id, 4) || !util_random_hex(secret, 24))
		return false;
	memcpy(key, "assay_", 6);
	memcpy(key + 6, id, 8);
	key[14] = '_';
	memcpy(key + 15, secret, 49);
	memcpy(prefix, key, APIKEY_PREFIX_LEN);
	prefix[APIKEY_PREFIX_LEN] = '\0';
	return true;
}

bool
apikey_prefix(const char *key, char prefix[APIKEY_PREFIX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	if (strlen(key) != APIKEY_LEN || strncmp(key, "assay_", 6) != 0 ||
	    key[14] != '_' || strspn(key + 6, hex) != 8 || strspn(key + 15, hex) != 48)
		return false;
	memcpy(prefix, key, APIKEY_PREFIX_LEN);
	prefix[APIKEY_PREFIX_LEN] = '\0';
	return true;
}

bool
apikey_token_generate(char token[APIKEY_TOKEN_LEN + 1])
{
	memcpy(token, "sse_", 4);
	return util_random_hex(token + 4, 24);
}

bool
apikey_token_valid(const char *token)
{
	return strncmp(token, "sse_", 4) == 0 && strlen(token) == APIKEY_TOKEN_LEN &&
	       strspn(token + 4, "0123456789abcdef") == 48;
}

void
apikey_sha256_hex(const char *s, size_t len, char hex[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	EVP_Digest(s, len, md, &n, EVP_sha256(), NULL);
	for (i = 0; i < n && i < 32; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[64] = '\0';
}

bool
apikey_equal(const char *a, const char *b, size_t len)
{
	return CRYPTO_memcmp(a, b, len) == 0;
}
