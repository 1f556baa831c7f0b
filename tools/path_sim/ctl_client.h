/* "egress-pathsim ctl SOCKET REQUEST...": sends one request line to a running simulator
 * and prints its reply line. */
#ifndef PATH_SIM_CTL_CLIENT_H
#define PATH_SIM_CTL_CLIENT_H

enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_ERROR_REPLY = 1,	/* the simulator refused the request */
	CTL_EXIT_NO_SIMULATOR = 2,	/* cannot connect, no reply, or a bad command line */
};

int ctl_client_run(const char *socket_path, int nwords, char **words);

#endif
