/*
 * libfreeradius-server.so expects two functions from the radiusd executable
 * itself (threads.c upstream). A test program that loads the server library
 * outside radiusd provides them: the same behaviour, no thread pool.
 */
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

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
