#include <linux/module.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/device.h>
#include <linux/sched.h>
#include <linux/cdev.h>
const unsigned long lkm_offsets[] = {
 offsetof(struct file, f_op), offsetof(struct file, f_pos), offsetof(struct file, private_data),
 offsetof(struct file, f_flags), offsetof(struct file, f_mode), offsetof(struct file, f_inode), sizeof(struct file),
 offsetof(struct inode, i_rdev), offsetof(struct inode, i_cdev), offsetof(struct inode, i_private), sizeof(struct inode),
 offsetof(struct file_operations, read), offsetof(struct file_operations, open), offsetof(struct file_operations, release),
 offsetof(struct miscdevice, minor), offsetof(struct miscdevice, name), offsetof(struct miscdevice, fops), sizeof(struct miscdevice),
 offsetof(struct file_system_type, name), offsetof(struct file_system_type, fs_flags),
 offsetof(struct task_struct, pid), offsetof(struct task_struct, comm), sizeof(struct task_struct),
 offsetof(struct cdev, ops), offsetof(struct cdev, dev), offsetof(struct cdev, count), sizeof(struct cdev),
 offsetof(struct device, driver), offsetof(struct device, bus), offsetof(struct device, class), offsetof(struct device, init_name),
 offsetof(struct kernel_param, ops), offsetof(struct kernel_param, arg), sizeof(struct kernel_param),
};
MODULE_LICENSE("GPL");
