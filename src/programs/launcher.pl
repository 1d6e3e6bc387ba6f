# The launcher every program the agent starts goes through, in Perl: used only where the native one
# (native/launcher/launcher.c, the same steps) cannot be executed by every user (src/user-spawn.ts).
# Arguments: `keep` or `unseal`, the program, its arguments. It closes every descriptor above 2
# (close_range(2), else each one /proc/self/fd lists), puts glibc's signals 32 and 33 back to their
# default (launcher.c says why), with `unseal` makes the sealed environment
# (SANDBOX_AGENT_ENV_<i> = "NAME=value") the environment, then execs the program.
my $mode = shift @ARGV;
require POSIX;
{
  # rt_sigaction: 13 on x86-64, 134 in the generic table (arm64, riscv64); a zeroed kernel
  # sigaction is SIG_DFL, no flags, no mask.
  my $rt_sigaction = (POSIX::uname())[4] eq "x86_64" ? 13 : 134;
  my $zeros = "\0" x 32;
  syscall($rt_sigaction, $_, $zeros, 0, 8) for (32, 33);
}
if (syscall(436, 3, 0xffffffff, 0) != 0) {
  opendir(my $dir, "/proc/self/fd") or die "sandbox-agent: cannot close inherited descriptors: $!\n";
  my @fds = grep { /^\d+$/ && $_ > 2 } readdir $dir;
  closedir $dir;
  POSIX::close($_) for @fds;
}
if ($mode eq "unseal") {
  my @vars;
  for (my $i = 0; exists $ENV{"SANDBOX_AGENT_ENV_$i"}; $i++) { push @vars, $ENV{"SANDBOX_AGENT_ENV_$i"}; }
  %ENV = map { split /=/, $_, 2 } @vars;
}
exec { $ARGV[0] } @ARGV;
print STDERR "sandbox-agent: cannot execute $ARGV[0]: $!\n";
exit($! == 2 ? 127 : 126);
