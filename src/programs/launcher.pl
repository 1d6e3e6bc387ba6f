# The launcher every program the agent starts goes through, in Perl: used only where the native one
# (native/launcher/launcher.c, the same steps) cannot be executed by every user (src/user-spawn.ts).
# Arguments: `keep` or `unseal`, the program, its arguments. It closes every descriptor above 2
# (close_range(2), else each one /proc/self/fd lists), with `unseal` makes the sealed environment
# (SANDBOX_AGENT_ENV_<i> = "NAME=value") the environment, then execs the program.
my $mode = shift @ARGV;
if (syscall(436, 3, 0xffffffff, 0) != 0) {
  require POSIX;
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
