/*
 * libfreeradius-server.so expects two functions from the radiusd executable
 * itself (threads.c upstream). A test program that loads the server library
 * outside radiusd provides them: the same behaviour, no thread pool. The
 * module also reads radiusd's radacct_dir (the journal's default place),
 * which the executable defines (radiusd.c upstream): none here.
 */
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

char const *radacct_dir = NULL;

pid_t rad_fork(void);
pid_t rad_waitpid(pid_t pid, int *status);

pid_t rad_fork(void)
{
	return fork();
}

pid_t rad_waitpid(pid_t pid, int *status)
{
	return waitpid(pid, status, 0);
}
