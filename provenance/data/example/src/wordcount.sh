#!/bin/sh
# wordcount: print the number of words on standard input.
words=0
while read -r line; do
  for _ in $line; do words=$((words + 1)); done
done
echo "$words"
