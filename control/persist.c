#include "persist.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void tmp_name(const char *path, char *buf, size_t len)
{
	snprintf(buf, len, "%s.tmp", path);
}

static int mkdir_parent(const char *path)
{
	char dir[EG_PATH_LEN];

	snprintf(dir, sizeof(dir), "%s", path);
	char *d = dirname(dir);

	if (mkdir(d, 0750) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

int cp_persist_load(const char *path, struct eg_egress_cfg **egresses, unsigned *n_egresses,
		    struct eg_policy_cfg **policies, unsigned *n_policies, struct eg_sa_cfg **sas,
		    unsigned *n_sas, struct eg_wg_peer_cfg **wg_peers, int *n_wg_peers, struct eg_error *err)
{
	json_error_t jerr;
	json_t *doc, *arr;
	int rc = 0;

	*wg_peers = NULL;
	*n_wg_peers = -1;
	*egresses = NULL;
	*policies = NULL;
	*sas = NULL;
	*n_egresses = *n_policies = *n_sas = 0;
	if (access(path, F_OK) != 0)
		return 1;
	doc = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (!doc) {
		snprintf(err->path, sizeof(err->path), "$");
		snprintf(err->msg, sizeof(err->msg), "%s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
		return -EINVAL;
	}
	if (!json_is_object(doc) || json_integer_value(json_object_get(doc, "version")) != 1) {
		snprintf(err->path, sizeof(err->path), "$.version");
		snprintf(err->msg, sizeof(err->msg), "not an egress state file of version 1");
		rc = -EINVAL;
		goto out;
	}
	arr = json_object_get(doc, "egresses");
	if (json_array_size(arr) > EG_MAX_EGRESSES || json_array_size(json_object_get(doc, "policies")) > EG_MAX_POLICIES) {
		snprintf(err->path, sizeof(err->path), "$");
		snprintf(err->msg, sizeof(err->msg), "more than %d egresses or %d policies", EG_MAX_EGRESSES,
			 EG_MAX_POLICIES);
		rc = -EINVAL;
		goto out;
	}
	if (json_is_array(arr) && json_array_size(arr)) {
		*egresses = calloc(json_array_size(arr), sizeof(**egresses));
		if (!*egresses) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < json_array_size(arr); i++) {
			char p[64];

			snprintf(p, sizeof(p), "$.egresses[%zu]", i);
			rc = eg_config_parse_egress(json_array_get(arr, i), p, &(*egresses)[i], err);
			if (rc)
				goto out;
			(*n_egresses)++;
		}
	}
	arr = json_object_get(doc, "policies");
	if (json_is_array(arr) && json_array_size(arr)) {
		*policies = calloc(json_array_size(arr), sizeof(**policies));
		if (!*policies) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < json_array_size(arr); i++) {
			char p[64];

			snprintf(p, sizeof(p), "$.policies[%zu]", i);
			rc = eg_config_parse_policy(json_array_get(arr, i), p, &(*policies)[i], err);
			if (rc)
				goto out;
			(*n_policies)++;
		}
	}
	rc = eg_sa_cfg_parse_section(json_object_get(doc, "ipsec"), "$.ipsec", sas, n_sas, err);
	arr = json_object_get(doc, "wireguard_peers");
	if (!rc && arr) {
		if (!json_is_array(arr) || json_array_size(arr) > EG_MAX_WG_PEERS) {
			snprintf(err->path, sizeof(err->path), "$.wireguard_peers");
			snprintf(err->msg, sizeof(err->msg), "expected an array of at most %d peers", EG_MAX_WG_PEERS);
			rc = -EINVAL;
			goto out;
		}
		*wg_peers = calloc(json_array_size(arr) + 1, sizeof(**wg_peers));
		if (!*wg_peers) {
			rc = -ENOMEM;
			goto out;
		}
		*n_wg_peers = 0;
		for (size_t i = 0; i < json_array_size(arr); i++) {
			char p[64];

			snprintf(p, sizeof(p), "$.wireguard_peers[%zu]", i);
			rc = eg_wg_peer_parse(json_array_get(arr, i), p, &(*wg_peers)[i], err);
			if (rc)
				goto out;
			(*n_wg_peers)++;
		}
	}
out:
	json_decref(doc);
	if (rc) {
		for (int i = 0; i < *n_wg_peers; i++)
			eg_wg_peer_wipe(&(*wg_peers)[i]);
		free(*wg_peers);
		*wg_peers = NULL;
		*n_wg_peers = -1;
		eg_sa_cfg_free_all(*sas, *n_sas);
		*sas = NULL;
		*n_sas = 0;
		for (unsigned i = 0; i < *n_policies; i++)
			eg_policy_cfg_free(&(*policies)[i]);
		free(*policies);
		free(*egresses);
		*egresses = NULL;
		*policies = NULL;
		*n_egresses = *n_policies = 0;
	}
	return rc;
}

int cp_persist_prepare(const char *path, const struct eg_egress_cfg *egresses, unsigned n_egresses,
		       const struct eg_policy_cfg *policies, unsigned n_policies,
		       const struct cp_sa *sas, unsigned n_sas, const struct cp_wg *wg)
{
	char tmp[EG_PATH_LEN + 8];
	json_t *doc = json_object(), *e = json_array(), *p = json_array(), *sa = json_array();
	int fd, rc = 0;

	if (!doc || !e || !p || !sa) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < n_egresses; i++)
		json_array_append_new(e, eg_config_egress_to_json(&egresses[i]));
	for (unsigned i = 0; i < n_policies; i++)
		json_array_append_new(p, eg_config_policy_to_json(&policies[i]));
	json_object_set_new(doc, "version", json_integer(1));
	json_object_set(doc, "egresses", e);
	json_object_set(doc, "policies", p);
	for (unsigned i = 0; i < n_sas; i++)
		json_array_append_new(sa, eg_sa_cfg_to_json(&sas[i].cfg, true));
	json_object_set_new(doc, "ipsec", json_pack("{s:O}", "sas", sa));
	if (wg && wg->present) {
		json_t *peers = json_array();

		for (unsigned i = 0; i < wg->n; i++)
			json_array_append_new(peers, eg_wg_peer_to_json(&wg->peers[i]->cfg, true));
		json_object_set_new(doc, "wireguard_peers", peers);
	}

	rc = mkdir_parent(path);
	if (rc)
		goto out;
	tmp_name(path, tmp, sizeof(tmp));
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (json_dumpfd(doc, fd, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 || write(fd, "\n", 1) != 1)
		rc = -EIO;
	else if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc)
		unlink(tmp);
out:
	json_decref(e);
	json_decref(p);
	json_decref(sa);
	/* The document held keys; jansson frees without wiping, so do what is possible: the
	 * key strings were wiped where they were made, the dump buffer is the file. */
	json_decref(doc);
	return rc;
}

int cp_persist_commit(const char *path)
{
	char tmp[EG_PATH_LEN + 8], dir[EG_PATH_LEN];
	int fd;

	tmp_name(path, tmp, sizeof(tmp));
	if (rename(tmp, path) != 0)
		return -errno;
	/* The rename is durable only once the directory is. */
	snprintf(dir, sizeof(dir), "%s", path);
	fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		fsync(fd);
		close(fd);
	}
	return 0;
}

void cp_persist_abort(const char *path)
{
	char tmp[EG_PATH_LEN + 8];

	tmp_name(path, tmp, sizeof(tmp));
	unlink(tmp);
}
