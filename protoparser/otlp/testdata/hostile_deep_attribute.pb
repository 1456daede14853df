
Š
‡
„
deep|*z
x2v
t
ko*m
k2i
g
kb*`
^2\
Z
kU*S
Q2O
M
kH*F
D2B
@
k;*9
725
3
k.*,
*2(
&
k!*
2

k*
2

k*

x