/* placeholder until implemented: fails so it cannot pass by accident */
#include <stdio.h>
int main(void)
{
	printf("1..1\nnot ok 1 - not implemented\n");
	return 1;
}
